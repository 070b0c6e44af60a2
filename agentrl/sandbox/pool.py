"""A warm pool of sandboxes.

Semantics:

* ``size`` sandboxes are kept started and idle, so :meth:`SandboxPool.acquire` is a queue pop
  (well under a millisecond) while the pool is warm;
* at most ``max_size`` sandboxes live at once (idle + in use + starting + resetting); when all
  are taken, ``acquire`` waits (up to ``timeout``, then :class:`SandboxUnavailable`); when none
  is idle but released ones are being reset, it waits for one of those (milliseconds) rather
  than start a new sandbox (seconds of CPU), as long as there are resets in flight for it;
* :meth:`release` returns immediately; the sandbox is reset (fresh kernel, leftover processes
  killed, work dir wiped) in the background and only then becomes idle again, so no caller ever
  sees another caller's state;
* a sandbox that died (``alive`` False after a :class:`SandboxCrashed`), failed its reset or a
  periodic health check is closed and replaced in the background — the only trace for callers
  is the typed error of the call that died;
* a sandbox that cannot start surfaces as :class:`SandboxUnavailable` (retryable) from
  ``acquire`` when the caller was waiting for it; background refills retry with back-off.

Use it from async code::

    async with SandboxPool(backend="local", size=4, max_size=16) as pool:
        async with pool.sandbox() as sb:
            result = await sb.run_code("1 + 1")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Self

from agentrl.sandbox.base import ServerSandbox
from agentrl.sandbox.errors import SandboxError, SandboxUnavailable
from agentrl.sandbox.limits import Limits

log = logging.getLogger(__name__)


class SandboxPool:
    """Warm pool. ``backend``/``limits``/``options`` go to :func:`agentrl.sandbox.new_sandbox`;
    or pass ``factory``: a callable returning an *unstarted* sandbox."""

    def __init__(
        self,
        backend: str = "local",
        size: int = 2,
        max_size: int | None = None,
        limits: Limits | None = None,
        factory: Callable[[], ServerSandbox] | None = None,
        reset_on_release: bool = True,
        health_interval: float = 30.0,
        **options,
    ):
        if size < 0:
            raise ValueError("size must be >= 0")
        self.max_size = max(max_size if max_size is not None else max(size, 1), 1)
        if size > self.max_size:
            raise ValueError(f"size ({size}) exceeds max_size ({self.max_size})")
        if factory is None:
            from agentrl.sandbox import new_sandbox

            def factory() -> ServerSandbox:
                return new_sandbox(backend, limits, **options)

        self.factory = factory
        self.size = size
        self.reset_on_release = reset_on_release
        self.health_interval = health_interval
        self._idle: deque[ServerSandbox] = deque()
        self._all: set[ServerSandbox] = set()
        self._live = 0  # counted from the moment a start begins until close
        self._cond = asyncio.Condition()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._failures = 0
        self._refilling = 0  # background starts in flight
        self._recycling = 0  # released sandboxes being reset
        self._waiting = 0  # acquire calls waiting for a sandbox
        self.replaced = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SandboxPool:
        """Start ``size`` sandboxes (concurrently) and the health checker."""
        async with self._cond:
            want = max(0, self.size - self._live)
            self._live += want
        results = await asyncio.gather(*(self._start_one() for _ in range(want)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        async with self._cond:
            for r in results:
                if isinstance(r, ServerSandbox):
                    self._idle.append(r)
            self._live -= len(errors)
            self._cond.notify_all()
        if errors and not self._idle and self.size:
            raise SandboxUnavailable(f"no sandbox of the pool could start: {errors[0]}") from errors[0]
        if self.health_interval > 0:
            self._spawn(self._health_loop())
        return self

    async def close(self) -> None:
        """Close every sandbox, idle or in use."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(sb.close() for sb in list(self._all)), return_exceptions=True)
        self._all.clear()
        self._idle.clear()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------------ acquire / release
    async def acquire(self, timeout: float | None = None) -> ServerSandbox:
        """A ready sandbox for exclusive use; give it back with :meth:`release`."""
        if self._closed:
            raise SandboxUnavailable("pool is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self._cond:
            while True:
                while self._idle:
                    sb = self._idle.popleft()
                    if sb.alive:
                        self._refill()
                        return sb
                    self._discard(sb)
                # a released sandbox being reset is back in milliseconds, a new one takes seconds
                # of CPU: start one only when no reset in flight is left for this caller
                if self._live < self.max_size and self._waiting >= self._recycling:
                    self._live += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SandboxUnavailable(f"all {self.max_size} sandboxes busy for {timeout:g} s")
                self._waiting += 1
                try:
                    await asyncio.wait_for(self._cond.wait(), remaining)
                except TimeoutError:
                    pass
                finally:
                    self._waiting -= 1
        try:
            return await self._start_one()
        except BaseException:
            async with self._cond:
                self._live -= 1
                self._cond.notify_all()
            raise

    async def release(self, sb: ServerSandbox, reset: bool | None = None) -> None:
        """Give a sandbox back. Reset (default) runs in the background; dead ones are replaced."""
        if self._closed:
            await sb.close()
            self._all.discard(sb)
            return
        if not sb.alive:
            async with self._cond:
                self._discard(sb)
                self._refill()
            return
        self._recycling += 1
        self._spawn(self._recycle(sb, self.reset_on_release if reset is None else reset))

    @contextlib.asynccontextmanager
    async def sandbox(self, timeout: float | None = None) -> AsyncIterator[ServerSandbox]:
        """``async with pool.sandbox() as sb:`` — acquire, and release (with reset) on exit."""
        sb = await self.acquire(timeout)
        try:
            yield sb
        finally:
            await self.release(sb)

    def stats(self) -> dict:
        return {
            "idle": len(self._idle),
            "live": self._live,
            "in_use_or_busy": self._live - len(self._idle),
            "max_size": self.max_size,
            "replaced": self.replaced,
        }

    # ------------------------------------------------------------------ internals
    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> ServerSandbox:
        sb = self.factory()
        self._all.add(sb)
        try:
            return await sb.start()
        except BaseException:
            self._all.discard(sb)
            raise

    async def _recycle(self, sb: ServerSandbox, reset: bool) -> None:
        try:
            if reset:
                await sb.reset()
        except SandboxError as exc:
            log.warning("sandbox reset failed (%s); replacing it", exc)
            await sb.close()
        async with self._cond:
            self._recycling -= 1
            if sb.alive and not self._closed:
                self._idle.append(sb)
                self._cond.notify()
            else:
                self._discard(sb)
                self._refill()

    def _discard(self, sb: ServerSandbox) -> None:
        """Forget a dead sandbox (caller holds the lock) and close it in the background."""
        if sb in self._all:
            self._all.discard(sb)
            self._live -= 1
            self.replaced += 1
            self._spawn(sb.close())
        self._cond.notify_all()

    def _refill(self) -> None:
        """Start sandboxes in the background until ``size`` are idle or on their way (lock held)."""
        coming = len(self._idle) + self._refilling + self._recycling
        for _ in range(max(0, min(self.size - coming, self.max_size - self._live))):
            self._live += 1
            self._refilling += 1
            self._spawn(self._refill_one())

    async def _refill_one(self) -> None:
        try:
            while not self._closed:
                try:
                    sb = await self._start_one()
                except SandboxError as exc:
                    self._failures += 1
                    delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
                    log.warning("sandbox start failed (%s); retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                self._failures = 0
                async with self._cond:
                    self._idle.append(sb)
                    self._cond.notify()
                return
        finally:
            self._refilling -= 1

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            for sb in list(self._idle):
                try:
                    healthy = (await sb.health()).ok
                except SandboxError:
                    healthy = False
                if healthy:
                    continue
                log.warning("an idle sandbox failed its health check; replacing it")
                async with self._cond:
                    if sb in self._idle:
                        self._idle.remove(sb)
                    self._discard(sb)
                    self._refill()
