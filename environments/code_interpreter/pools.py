"""One warm sandbox pool per process, shared by every code-interpreter env instance.

Pools hold aiohttp sessions and asyncio primitives, which belong to the event loop that made
them. Envs, though, run on many loops: the rollout engine's loop, and a private loop per env for
the synchronous ``reset``/``step`` API. So the pools live on **one background event loop per
process** (a daemon thread), and every sandbox call is handed to that loop with
:func:`asyncio.run_coroutine_threadsafe` and awaited from the caller's loop. The hop costs
tens of microseconds (measured in ``bench/code_interpreter.py``) against milliseconds per cell.

Pools are keyed by backend and options; they start on first use and are closed when the
interpreter exits — normally, by an exception, or by SIGTERM — so no sandbox (process or
container) outlives the process that started it:

* the close is registered with ``threading._register_atexit``, which runs *before* the
  interpreter shuts down its thread pools; a plain ``atexit`` hook runs after, when the docker
  backend's ``asyncio.to_thread`` calls fail with "cannot schedule new futures after shutdown"
  and the containers were left running;
* SIGTERM, whose default action ends the process without any exit hook, is turned into
  ``SystemExit(143)`` while a pool is open — only when the main thread still has the default
  handler (an application's own handler is never replaced);
* after SIGKILL no hook can run: local sandboxes die with the process anyway (their server exits
  when its stdin pipe closes) and docker containers carry owner labels that the next start-up
  removes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from agentrl.sandbox import SandboxPool

T = TypeVar("T")
log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pools: dict[tuple, SandboxPool] = {}
_starting: dict[tuple, asyncio.Future] = {}  # pools whose start() is in flight


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="agentrl-sandbox-loop", daemon=True).start()
            _loop = loop
            threading._register_atexit(close_pools)  # before the executors shut down (module doc)
            _exit_on_sigterm()
        return _loop


def _exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit (so the exit hooks close the pools) if nobody handles it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


async def on_pool_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the pools' loop and await its result from the current loop."""
    loop = _background_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def shared_pool(backend: str, size: int, max_size: int, **options: Any) -> SandboxPool:
    """The process-wide pool for ``backend`` and ``options`` (created and started on first use).

    Call from any loop; use the pool only through :func:`on_pool_loop`. A pool that fails to
    start raises (``SandboxUnavailable``) and is forgotten, so a later call tries again.
    """
    key = (backend, size, max_size, tuple(sorted(options.items())))
    pool = _pools.get(key)
    if pool is not None and key not in _starting:
        return pool

    async def start() -> SandboxPool:  # runs on the pools' loop: no lock needed
        if key not in _starting:
            if key in _pools:
                return _pools[key]
            _pools[key] = SandboxPool(backend=backend, size=size, max_size=max_size, **options)
            _starting[key] = asyncio.ensure_future(_pools[key].start())
        task = _starting[key]
        try:
            await asyncio.shield(task)
        except BaseException:
            if _starting.get(key) is task:
                _starting.pop(key, None)
                _pools.pop(key, None)
            raise
        _starting.pop(key, None)
        return _pools[key]

    return await on_pool_loop(start())


def close_pools() -> None:
    """Close every shared pool (runs at exit; safe to call twice)."""
    loop = _loop
    if loop is None or loop.is_closed() or not _pools:
        return
    pools = list(_pools.values())
    _pools.clear()

    async def close_all() -> None:
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)

    try:
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=60)
    except (TimeoutError, RuntimeError) as exc:  # exiting anyway: log, never mask the exit status
        log.warning("closing the shared sandbox pools failed: %s", exc)
