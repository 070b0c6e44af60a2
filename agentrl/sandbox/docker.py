"""The ``docker`` backend: one container per sandbox, through the docker SDK (real isolation).

Each container runs the in-sandbox server from the project's image (``agentrl sandbox build``)
with:

* ``network_mode="none"`` (unless ``limits.network``): the host reaches the server through a
  Unix socket in a host folder bind-mounted at ``/run/agentrl``, so no network is needed;
* ``mem_limit`` = ``memswap_limit`` (no swap), ``nano_cpus``, ``pids_limit``, RLIMIT_FSIZE/CPU;
* a read-only root file system; ``/work`` and ``/tmp`` are size-limited tmpfs (``disk_mb``;
  tmpfs pages count towards the memory limit);
* user 1000 (not root; the host user's own uid when that is not root), all capabilities
  dropped, ``no-new-privileges``;
* the socket folder is mode 0700 and owned by the container's uid, the socket 0600, and the
  server answers only requests that carry this sandbox's token (written to ``token`` in that
  folder, read and deleted by the server at start): no other host user and no other sandbox
  can drive it;
* labels ``agentrl.sandbox``, ``agentrl.host``, ``agentrl.pid`` and ``agentrl.pid_start``: the first
  docker sandbox a process starts removes containers whose owning process (on this host) is
  gone — the leftovers of a crashed run (:func:`cleanup_orphans`).

Blocking SDK calls run in worker threads (``asyncio.to_thread``), so the event loop never waits
on the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from agentrl.sandbox.base import ServerSandbox
from agentrl.sandbox.errors import SandboxUnavailable
from agentrl.sandbox.image import DEFAULT_IMAGE, docker_client
from agentrl.sandbox.limits import Limits

log = logging.getLogger(__name__)

LABEL = "agentrl.sandbox"
SOCKET_MOUNT = "/run/agentrl"
SANDBOX_UID = "1000:1000"


def container_ids() -> tuple[int, int]:
    """The uid:gid a container runs as: 1000 for a root host (so nothing in it is root), else the
    host user's own ids (so the owner-only socket folder stays reachable from both sides)."""
    if os.geteuid() == 0:
        uid, gid = map(int, SANDBOX_UID.split(":"))
        return uid, gid
    return os.geteuid(), os.getegid()


MB = 1024 * 1024

_cleanup_lock = threading.Lock()
_cleaned = False


def _proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks (field 22 of /proc/PID/stat): guards against pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[19].decode()


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL: "1",
        "agentrl.host": socket.gethostname(),
        "agentrl.pid": str(pid),
        "agentrl.pid_start": str(_proc_start_time(pid)),
    }


def is_orphan(labels: dict[str, str]) -> bool:
    """A container of ours whose owning process on this host no longer exists."""
    if labels.get("agentrl.host") != socket.gethostname():
        return False
    try:
        pid = int(labels.get("agentrl.pid", ""))
    except ValueError:
        return True
    return _proc_start_time(pid) != labels.get("agentrl.pid_start")


def cleanup_orphans(client=None, everything: bool = False) -> list[str]:
    """Remove orphaned sandbox containers (or all of them with ``everything``); returns their names."""
    client = client or docker_client()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if everything or is_orphan(container.labels):
            try:
                container.remove(force=True)
                removed.append(container.name)
            except Exception as exc:  # noqa: BLE001 - already gone or being removed
                log.debug("could not remove %s: %s", container.name, exc)
    return removed


def cleanup_orphans_once(client) -> None:
    """:func:`cleanup_orphans`, the first time a container is started in this process."""
    global _cleaned
    with _cleanup_lock:
        if not _cleaned:
            removed = cleanup_orphans(client)
            if removed:
                log.info("removed %d orphaned sandbox containers", len(removed))
            _cleaned = True


def client_with_image(image: str, build_command: str):
    """A docker client, orphans cleaned up once, with ``image`` present; else SandboxUnavailable
    whose message names the command that builds the image."""
    import docker

    client = docker_client()
    cleanup_orphans_once(client)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise SandboxUnavailable(f"image {image} not found: build it with `{build_command}`") from None
    return client


class DockerSandbox(ServerSandbox):
    backend = "docker"

    def __init__(self, limits: Limits | None = None, image: str = DEFAULT_IMAGE, runtime: str | None = None):
        super().__init__(limits)
        self.image = image
        self.runtime = runtime
        self.container = None
        self.sockdir: Path | None = None
        self._client = None

    async def _launch(self) -> Path:
        return await asyncio.to_thread(self._launch_sync)

    def _launch_sync(self) -> Path:
        import docker
        from docker.types import Ulimit

        self._client = client = client_with_image(self.image, "agentrl sandbox build")
        lim = self.limits
        uid, gid = container_ids()
        self.sockdir = Path(tempfile.mkdtemp(prefix="agentrl-docker-"))  # mode 0700
        token = self.sockdir / "token"
        token.write_text(self.token)
        os.chmod(token, 0o600)
        for path in (self.sockdir, token):
            os.chown(path, uid, gid)  # the server's uid; a no-op for a non-root host user
        ulimits = [
            Ulimit(name="fsize", soft=lim.file_size_mb * MB, hard=lim.file_size_mb * MB),
            Ulimit(name="core", soft=0, hard=0),
        ]
        if lim.cpu_time_s is not None:
            ulimits.append(Ulimit(name="cpu", soft=lim.cpu_time_s, hard=lim.cpu_time_s + 5))
        tmpfs_opts = f"rw,exec,nosuid,nodev,size={lim.disk_mb}m"
        try:
            self.container = client.containers.run(
                self.image,
                detach=True,
                network_mode="bridge" if lim.network else "none",
                mem_limit=lim.memory_mb * MB,
                memswap_limit=lim.memory_mb * MB,
                nano_cpus=int(lim.cpus * 1e9),
                pids_limit=lim.pids,
                read_only=True,
                tmpfs={
                    "/work": f"{tmpfs_opts},uid={uid},gid={gid},mode=0755",
                    "/tmp": f"{tmpfs_opts},mode=1777",
                },
                volumes={str(self.sockdir): {"bind": SOCKET_MOUNT, "mode": "rw"}},
                user=f"{uid}:{gid}",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ulimits=ulimits,
                labels=owner_labels(),
                runtime=self.runtime,
            )
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(f"docker could not start a sandbox container: {exc}") from exc
        return self.sockdir / "sandbox.sock"

    async def _server_gone(self) -> bool:
        if self.container is None:
            return True
        return await asyncio.to_thread(self._gone_sync)

    def _gone_sync(self) -> bool:
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001 - removed, or engine trouble: not a confirmed exit (infra)
            return False
        return self.container.status in ("exited", "dead")

    def _log_tail(self) -> str:
        try:
            return self.container.logs(tail=30).decode(errors="replace")
        except Exception:  # noqa: BLE001
            return ""

    def info(self) -> dict:
        return {
            **super().info(),
            "image": self.image,
            "container": self.container.name if self.container is not None else None,
            "network_isolated": not self.limits.network,
            "security_boundary": True,
        }

    async def _terminate(self) -> None:
        if self.container is not None:
            container, self.container = self.container, None
            try:
                await asyncio.to_thread(container.remove, force=True)
            except Exception as exc:  # noqa: BLE001 - already removed
                log.debug("container remove: %s", exc)
        if self.sockdir is not None:
            shutil.rmtree(self.sockdir, ignore_errors=True)
