"""A browser inside a Docker sandbox container: ``BrowserConfig(backend="docker")``.

The container comes from the browser variant of the sandbox image (``agentrl sandbox build
--variant browser`` -> ``agentrl-sandbox-browser:latest``: the sandbox image on a debootstrapped
Debian base that includes ``chromium``, ``chromium-driver`` and ``socat``). It runs

    socat UNIX-LISTEN:/run/agentrl/chromedriver.sock,fork  TCP:127.0.0.1:9515  &
    exec chromedriver --port=9515

with ``network_mode="none"``: chromedriver listens on the container's own loopback, and the only
way in is the Unix socket in a host folder bind-mounted at ``/run/agentrl`` — selenium on the
host speaks HTTP over that socket (:class:`UnixSocketConnection`). Chromium has no network at
all; the MiniWoB pages are the host's ``miniwob/html`` package folder mounted read-only at
``/opt/miniwob/html`` and opened from ``file://`` inside the container.

Hardening as for code sandboxes (:mod:`agentrl.sandbox.docker`): read-only root, ``/tmp`` a
size-limited tmpfs (the profile lives there), uid 1000, every capability dropped,
``no-new-privileges``, memory limit without swap, a pids limit, ``init`` as PID 1 (reaps
Chromium's helpers). Containers carry the sandbox layer's owner labels plus
``agentrl.kind=browser``: they are removed on close, and orphans of a dead process are removed by
the first container start of the next one and by ``agentrl sandbox prune``.

Failures keep the local backend's types: a container that will not start or an image that is
missing is :class:`BrowserUnavailable`; a container that dies (killed, out of memory) makes the
next command fail to connect, which is :class:`BrowserCrashed`; a hung command removes the
container and is :class:`BrowserTimeout`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import tempfile
import threading
import time

import urllib3
from agentrl_envs.gui.browser.chromium import Browser, BrowserConfig, BrowserUnavailable
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.remote.remote_connection import RemoteConnection

from agentrl.sandbox.errors import SandboxUnavailable

SOCKET_MOUNT = "/run/agentrl"
SOCKET_NAME = "chromedriver.sock"
HTML_MOUNT = "/opt/miniwob/html"  # the package's html/ folder: pages load ../core/*.js from it
PAGES_MOUNT = HTML_MOUNT + "/miniwob"
DRIVER_PORT = 9515
KIND_LABEL = "agentrl.kind"
CHROMIUM = "/usr/bin/chromium"
TMPFS_MB = 512
PIDS_LIMIT = 1024  # counts threads: one Chromium with a tab runs ~100
MB = 1024 * 1024
# Host name selenium puts in its URLs; the connection goes to the Unix socket whatever it says.
_VIRTUAL_ADDR = f"http://localhost:{DRIVER_PORT}"


class _UnixHTTPConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose transport is a Unix socket."""

    def __init__(self, *args, socket_path: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(
                self, f"cannot connect to {self.socket_path}: {exc}"
            ) from exc
        return sock


class _UnixHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _UnixHTTPConnection


def unix_pool_manager(socket_path: str, **kwargs) -> urllib3.PoolManager:
    """A urllib3 PoolManager that sends every ``http://`` request through ``socket_path``."""
    manager = urllib3.PoolManager(**kwargs)
    manager.pool_classes_by_scheme = {
        "http": functools.partial(_UnixHTTPConnectionPool, socket_path=socket_path)
    }
    return manager


class UnixSocketConnection(RemoteConnection):
    """selenium's WebDriver HTTP client, over a Unix socket instead of TCP."""

    def __init__(self, socket_path: str, timeout: float):
        self.socket_path = socket_path
        super().__init__(
            client_config=ClientConfig(remote_server_addr=_VIRTUAL_ADDR, timeout=timeout), ignore_proxy=True
        )

    def _get_connection_manager(self) -> urllib3.PoolManager:
        return unix_pool_manager(self.socket_path, timeout=self._client_config.timeout)


class DockerBrowser(Browser):
    """A :class:`Browser` whose chromedriver and Chromium run in a browser sandbox container."""

    def __init__(self, config: BrowserConfig | None = None):
        self.container = None
        self._sockdir: str | None = None
        self._lock = threading.Lock()
        super().__init__(config)

    @property
    def page_root(self) -> str:
        return PAGES_MOUNT

    def _start(self) -> None:
        import docker
        from agentrl_envs.gui.browser.page import miniwob_html_dir
        from selenium import webdriver

        from agentrl.sandbox.docker import client_with_image, container_ids, owner_labels

        c = self.config
        try:
            client = client_with_image(c.image, "agentrl sandbox build --variant browser")
        except SandboxUnavailable as exc:
            raise BrowserUnavailable(str(exc)) from None
        uid, gid = container_ids()
        self._sockdir = tempfile.mkdtemp(prefix="agentrl-browser-")  # mode 0700
        os.chown(self._sockdir, uid, gid)  # socat's uid; a no-op for a non-root host user
        sock = os.path.join(self._sockdir, SOCKET_NAME)
        script = (
            f"socat UNIX-LISTEN:{SOCKET_MOUNT}/{SOCKET_NAME},fork,mode=0600 TCP:127.0.0.1:{DRIVER_PORT} & "
            f"exec chromedriver --port={DRIVER_PORT}"
        )
        try:
            container = client.containers.run(
                c.image,
                ["sh", "-c", script],
                detach=True,
                init=True,
                network_mode="none",
                mem_limit=c.memory_mb * MB,
                memswap_limit=c.memory_mb * MB,
                pids_limit=PIDS_LIMIT,
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_MB}m,mode=1777"},
                volumes={
                    self._sockdir: {"bind": SOCKET_MOUNT, "mode": "rw"},
                    os.path.dirname(miniwob_html_dir()): {"bind": HTML_MOUNT, "mode": "ro"},
                },
                environment={"HOME": "/tmp"},
                user=f"{uid}:{gid}",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels={**owner_labels(), KIND_LABEL: "browser"},
            )
        except docker.errors.APIError as exc:
            raise BrowserUnavailable(f"docker could not start a browser container: {exc}") from exc
        with self._lock:
            abandoned = self.dead  # killed (start deadline passed) while the container was created
            if not abandoned:
                self.container = container
        if abandoned:
            container.remove(force=True)
            raise BrowserUnavailable("browser start abandoned")
        self._wait_for_driver(sock)
        # The socket's read timeout is only a backstop (start and commands have their own deadlines);
        # it must not cut the session's creation short of the start deadline (a cold container
        # Chromium on a loaded machine took > 20 s once in CI).
        executor = UnixSocketConnection(sock, timeout=max(c.command_timeout_s, c.start_timeout_s) + 5)
        self.driver = webdriver.Remote(
            command_executor=executor, options=self._options(CHROMIUM, "/tmp/profile")
        )
        self.driver.set_script_timeout(c.command_timeout_s)

    def _wait_for_driver(self, sock: str) -> None:
        """Until chromedriver answers ``/status`` through the socket (the container may still be starting)."""
        manager = unix_pool_manager(sock, timeout=2.0, retries=False)
        while not self.dead:
            if os.path.exists(sock):
                try:
                    if manager.request("GET", f"{_VIRTUAL_ADDR}/status").status == 200:
                        return
                except urllib3.exceptions.HTTPError:
                    pass
            if not self.alive():
                raise BrowserUnavailable(f"browser container exited during start-up:\n{self._log_tail()}")
            time.sleep(0.1)
        raise BrowserUnavailable("browser start abandoned")

    def _log_tail(self) -> str:
        try:
            return self.container.logs(tail=20).decode(errors="replace")
        except Exception:  # noqa: BLE001 - the container may be gone already
            return ""

    def alive(self) -> bool:
        """Whether the container is still running (one engine round trip)."""
        if self.dead or self.container is None:
            return False
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001 - NotFound or engine trouble: treat as gone
            return False
        return self.container.status == "running"

    def kill(self) -> None:
        """Remove the container (SIGKILL to everything in it) and the socket folder."""
        with self._lock:
            self.dead = True
            container, self.container = self.container, None
        if container is not None:
            with contextlib.suppress(Exception):  # already removed, or the engine is gone with it
                container.remove(force=True)
        if self._sockdir is not None:
            shutil.rmtree(self._sockdir, ignore_errors=True)
        self._cleanup()


def browser_containers(client=None) -> list:
    """Browser containers of any owner known to the engine (for leak checks)."""
    from agentrl.sandbox.docker import LABEL
    from agentrl.sandbox.image import docker_client

    client = client or docker_client()
    return client.containers.list(all=True, filters={"label": [LABEL, f"{KIND_LABEL}=browser"]})
