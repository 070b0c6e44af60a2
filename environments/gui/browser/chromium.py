"""One headless Chromium driven through selenium, with typed infrastructure errors.

Every browser command runs on the browser's own worker thread under a deadline
(:meth:`Browser.run` / :meth:`Browser.arun`). When a command outlives its deadline the browser
is declared hung, its whole process tree (chromedriver, Chromium and every renderer) is killed,
and :class:`BrowserTimeout` is raised; when Chromium or chromedriver dies underneath a command,
:class:`BrowserCrashed` is raised. Both are :class:`BrowserError` — infrastructure failures that
the rollout engine keeps out of the learning signal; a dead browser is never reused (the
:class:`~agentrl_envs.gui.browser.pool.BrowserPool` replaces it).

No process outlives :meth:`Browser.close`: chromedriver starts in its own session and the
process tree recorded at start-up (plus any children found at close) is killed if a polite
``quit()`` did not end it.

``BrowserConfig(backend="docker")`` runs chromedriver and Chromium inside a container instead
(:class:`~agentrl_envs.gui.browser.container.DockerBrowser`); :func:`launch` picks the class.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal, Self, TypeVar

import psutil
from pydantic import BaseModel, ConfigDict, Field

from agentrl.errors import InfraError
from agentrl.sandbox.errors import SandboxCrashed, SandboxError, SandboxUnavailable

T = TypeVar("T")

CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--no-first-run",
    "--mute-audio",
)


class BrowserError(SandboxError, InfraError):
    """An infrastructure failure of a browser (not the agent's fault): an
    :class:`~agentrl.errors.InfraError`, so rollouts that hit one are masked, never scored.
    Each subclass is also the matching :mod:`agentrl.sandbox.errors` type.
    """


class BrowserUnavailable(BrowserError, SandboxUnavailable):
    """Chromium or chromedriver is missing or would not start (retryable)."""


class BrowserCrashed(BrowserError, SandboxCrashed):
    """Chromium or chromedriver died, or the session was lost, during a command."""


class BrowserPageError(BrowserError, SandboxCrashed):
    """A command failed on a live browser (a page that would not load or start, a script error)."""


class BrowserTimeout(BrowserError, SandboxCrashed):
    """A command did not finish within its deadline; the browser was killed as hung.

    Unlike :class:`~agentrl.sandbox.errors.SandboxTimeout` (the agent's code ran too long) a
    hung browser is never the agent's doing, so it is a crash to the rollout engine.
    """


class BrowserConfig(BaseModel):
    """How to start a browser; defaults fit Debian's ``chromium`` + ``chromium-driver``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chrome_binary: str = Field(
        default_factory=lambda: os.environ.get("AGENTRL_CHROME_BINARY", "/usr/bin/chromium"),
        description="Chromium executable (env AGENTRL_CHROME_BINARY).",
    )
    chromedriver: str = Field(
        default_factory=lambda: os.environ.get("AGENTRL_CHROMEDRIVER", "/usr/bin/chromedriver"),
        description="chromedriver executable (env AGENTRL_CHROMEDRIVER).",
    )
    backend: Literal["local", "docker"] = Field(
        default="local", description="local: Chromium as a child process; docker: inside a browser sandbox container."
    )
    image: str = Field(
        default="agentrl-sandbox-browser:latest",
        description="docker backend: image with chromium + chromium-driver (agentrl sandbox build --variant browser).",
    )
    memory_mb: int = Field(default=1536, ge=256, description="docker backend: container memory limit (no swap).")
    width: int = Field(default=500, ge=100)
    height: int = Field(default=700, ge=100)
    start_timeout_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float = Field(default=15.0, gt=0, description="Deadline of one command.")


def _crash_types() -> tuple[type[BaseException], ...]:
    from selenium.common.exceptions import InvalidSessionIdException, NoSuchWindowException
    from urllib3.exceptions import HTTPError

    return (InvalidSessionIdException, NoSuchWindowException, HTTPError, ConnectionError)


_CRASH_WORDS = ("chrome not reachable", "session deleted", "disconnected", "tab crashed", "target crashed",
                "no such session", "cannot connect to chrome", "target window already closed")


def is_crash(exc: BaseException) -> bool:
    """Whether a selenium exception means the browser (not the page) is gone."""
    if isinstance(exc, _crash_types()):
        return True
    message = str(exc).lower()
    return any(word in message for word in _CRASH_WORDS)


class Browser:
    """A running headless Chromium with a selenium driver, used by one episode at a time."""

    def __init__(self, config: BrowserConfig | None = None):
        self.config = config or BrowserConfig()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._processes: list[psutil.Process] = []
        self._profile: str | None = None
        self._closed = False
        self.dead = False
        self.driver = None
        started = time.perf_counter()
        try:
            future = self._executor.submit(self._start)
            future.result(timeout=self.config.start_timeout_s)
        except concurrent.futures.TimeoutError:
            self.kill()
            raise BrowserUnavailable(f"Chromium did not start within {self.config.start_timeout_s:.0f} s") from None
        except BrowserUnavailable:
            self.kill()
            raise
        except Exception as exc:
            self.kill()
            raise BrowserUnavailable(f"Chromium would not start: {type(exc).__name__}: {exc}") from exc
        self.start_seconds = time.perf_counter() - started

    @property
    def page_root(self) -> str:
        """Folder of the MiniWoB task pages as this browser sees it (for ``file://`` URLs)."""
        from agentrl_envs.gui.browser.page import miniwob_html_dir

        return miniwob_html_dir()

    def _options(self, chrome_binary: str, profile: str):
        from selenium import webdriver

        options = webdriver.ChromeOptions()
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={self.config.width},{self.config.height}")
        options.add_argument(f"--user-data-dir={profile}")
        options.binary_location = chrome_binary
        return options

    def _start(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        c = self.config
        for path, what, package in ((c.chrome_binary, "Chromium", "chromium"), (c.chromedriver, "chromedriver", "chromium-driver")):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise BrowserUnavailable(
                    f"{what} not found at {path}: run scripts/chromium_setup.sh (apt-get install {package})"
                )
        self._profile = tempfile.mkdtemp(prefix="agentrl-chromium-")
        options = self._options(c.chrome_binary, self._profile)
        # Its own session, so nothing it starts is tied to our terminal or process group.
        service = Service(executable_path=c.chromedriver, popen_kw={"start_new_session": True})
        self.driver = webdriver.Chrome(service=service, options=options)  # starts the service
        self._processes = [psutil.Process(service.process.pid)]
        self.driver.set_script_timeout(c.command_timeout_s)
        # chromedriver first, then the Chromium main process it started, then the helpers.
        self._processes += self._processes[0].children(recursive=False)
        self._processes = self._tree()

    def _tree(self) -> list[psutil.Process]:
        """The recorded processes plus every live descendant of them."""
        found: dict[int, psutil.Process] = {}
        for proc in self._processes:
            try:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    @property
    def pids(self) -> list[int]:
        """Process ids of chromedriver, Chromium and its helpers (live ones)."""
        return [p.pid for p in self._tree() if p.is_running()]

    # ----------------------------------------------------------------- commands
    def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(driver, *args)`` on the browser thread, within ``timeout`` seconds."""
        future = self._submit(fn, *args)
        try:
            return future.result(timeout=timeout or self.config.command_timeout_s)
        except concurrent.futures.TimeoutError:
            raise self._hung(timeout) from None
        except BrowserError:
            raise
        except Exception as exc:
            raise self._classify(exc) from exc

    async def arun(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Async twin of :meth:`run` (the event loop is never blocked by the browser)."""
        future = asyncio.wrap_future(self._submit(fn, *args))
        try:
            return await asyncio.wait_for(future, timeout or self.config.command_timeout_s)
        except TimeoutError:
            raise self._hung(timeout) from None
        except BrowserError:
            raise
        except Exception as exc:
            raise self._classify(exc) from exc

    def _submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
        if self.dead or self._closed:
            raise BrowserCrashed("this browser was closed or has died; acquire a new one from the pool")
        return self._executor.submit(fn, self.driver, *args)

    def _hung(self, timeout: float | None) -> BrowserTimeout:
        self.kill()
        return BrowserTimeout(f"browser command exceeded {timeout or self.config.command_timeout_s:.1f} s; browser killed")

    def _classify(self, exc: Exception) -> BrowserError:
        """A crash becomes BrowserCrashed (and the browser is killed); anything else BrowserPageError."""
        summary = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if is_crash(exc) or not self.alive():
            self.kill()
            return BrowserCrashed(f"browser died: {summary}")
        return BrowserPageError(f"browser command failed: {summary}")

    def alive(self) -> bool:
        """Whether chromedriver and the main Chromium process are still running."""
        if self.dead:
            return False
        try:
            main = self._processes[:2]  # chromedriver and the Chromium main process
            return len(main) == 2 and all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in main)
        except psutil.NoSuchProcess:
            return False

    # ----------------------------------------------------------------- shutdown
    def kill(self) -> None:
        """Kill every process of this browser at once (used for hung or crashed browsers)."""
        self.dead = True
        procs = self._tree()
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=5)
        self._cleanup()

    def close(self) -> None:
        """Quit politely (bounded by a deadline), then kill whatever is left."""
        if self._closed:
            return
        if not self.dead and self.driver is not None:
            try:
                self._executor.submit(self.driver.quit).result(timeout=10)
            except Exception:  # quitting a broken browser may fail in many ways; kill() follows
                pass
        self.kill()

    def _cleanup(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._profile is not None:  # its processes are dead: remove it now (a daemon thread
            shutil.rmtree(self._profile, ignore_errors=True)  # died with the interpreter, leaving it)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch(config: BrowserConfig | None = None) -> Browser:
    """A started browser of ``config.backend`` (``local``: :class:`Browser`; ``docker``: in a container)."""
    config = config or BrowserConfig()
    if config.backend == "docker":
        from agentrl_envs.gui.browser.container import DockerBrowser

        return DockerBrowser(config)
    return Browser(config)


def chromium_pids(ancestor: int | None = None) -> list[int]:
    """Live Chromium / chromedriver processes (only descendants of ``ancestor`` if given), for leak checks."""
    if ancestor is None:
        candidates = psutil.process_iter()
    else:
        try:
            candidates = psutil.Process(ancestor).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
    pids = []
    for proc in candidates:
        try:
            if "chrom" in proc.name().lower() and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids
