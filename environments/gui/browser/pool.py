"""A pool of warm browsers shared by GUI envs, replacing the ones that die.

An env leases one browser for as long as it runs episodes (``acquire`` on its first reset,
``release`` on close) — starting Chromium costs about a second, loading a task page about
0.1 s, so browsers are kept warm and reused across episodes and envs. ``size`` bounds how many
Chromium instances run at once (each holds ~100–300 MB); an ``acquire`` beyond it waits for a
release. A browser released dead (crashed or killed as hung) is dropped and its slot freed, so
the next ``acquire`` starts a replacement: ``stats()["replaced"]`` counts them. No free slot
within ``acquire``'s timeout is a :class:`BrowserUnavailable` (an infra error: masked).
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref

from agentrl_envs.gui.browser.chromium import Browser, BrowserConfig, BrowserUnavailable, launch


class BrowserPool:
    """Hands out running :class:`Browser` s, at most ``size`` alive at a time."""

    def __init__(self, size: int = 4, config: BrowserConfig | None = None):
        if size < 1:
            raise ValueError("a browser pool needs size >= 1")
        self.size = size
        self.config = config or BrowserConfig()
        self._idle: list[Browser] = []
        self._leased: set[Browser] = set()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._started = 0
        self._replaced = 0
        self._closed = False
        _live_pools.add(self)

    def acquire(self, timeout: float | None = None) -> Browser:
        """A warm idle browser, or a new one if a slot is free; waits up to ``timeout`` s for one."""
        if self._closed:
            raise RuntimeError("the browser pool is closed")
        if not self._slots.acquire(timeout=timeout):  # None: wait for a release
            raise BrowserUnavailable(f"no browser free within {timeout} s (pool size {self.size})")
        with self._lock:
            while self._idle:
                browser = self._idle.pop()
                if browser.alive():
                    self._leased.add(browser)
                    return browser
                browser.close()
                self._replaced += 1
        try:
            browser = launch(self.config)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._started += 1
            self._leased.add(browser)
        return browser

    async def aacquire(self, timeout: float | None = None) -> Browser:
        """Async twin of :meth:`acquire` (waiting and starting happen off the event loop).

        Cancelling the caller (Ctrl-C) cannot stop its thread: the browser that thread still gets
        goes straight back to the pool, so no slot is lost and no other waiter waits forever."""
        leased = asyncio.get_running_loop().run_in_executor(None, self.acquire, timeout)
        try:
            return await asyncio.shield(leased)
        except asyncio.CancelledError:
            leased.add_done_callback(self._release_unclaimed)
            raise

    def _release_unclaimed(self, leased: asyncio.Future) -> None:
        if not leased.cancelled() and leased.exception() is None:
            self.release(leased.result())

    def release(self, browser: Browser) -> None:
        """Give a browser back; a dead one is closed and its slot frees up for a replacement."""
        with self._lock:
            if browser not in self._leased:
                return
            self._leased.discard(browser)
            healthy = browser.alive() and not self._closed
            if healthy:
                self._idle.append(browser)
            else:
                self._replaced += not self._closed
        if not healthy:
            browser.close()
        self._slots.release()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"size": self.size, "idle": len(self._idle), "leased": len(self._leased),
                    "started": self._started, "replaced": self._replaced}

    def close(self) -> None:
        """Close every browser, idle or leased."""
        with self._lock:
            self._closed = True
            browsers = self._idle + list(self._leased)
            self._idle, self._leased = [], set()
        for browser in browsers:
            browser.close()


_default_pools: dict[tuple[int, BrowserConfig], BrowserPool] = {}
_default_lock = threading.Lock()


def default_pool(size: int = 4, config: BrowserConfig | None = None) -> BrowserPool:
    """The process-wide pool for ``(size, config)`` (every pool is closed when the interpreter exits)."""
    key = (size, config or BrowserConfig())
    with _default_lock:
        pool = _default_pools.get(key)
        if pool is None or pool._closed:
            pool = _default_pools[key] = BrowserPool(size, key[1])
        return pool


_live_pools: weakref.WeakSet[BrowserPool] = weakref.WeakSet()


@atexit.register
def _close_all_pools() -> None:
    """No Chromium outlives the interpreter, even when a pool's owner forgot to close it."""
    for pool in list(_live_pools):
        pool.close()
