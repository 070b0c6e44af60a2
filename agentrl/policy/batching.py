"""Dynamic batching: concurrent requests grouped into one call of a synchronous batch function.

A dedicated worker thread owns the "accelerator": it takes the first waiting request, waits at
most ``max_wait_s`` for more (up to ``max_batch_size``), runs ``run_batch(items)`` and hands the
results back to the event loop. One batch runs at a time (one accelerator). The next batch is
formed in the worker thread the moment the previous one ends, so the accelerator never waits for
the event loop to get round to it (the loop is busy stepping the environments the last batch
woke up; an earlier loop-side design left ~10 ms gaps between batches and capped utilisation at
~80% in bench/rollout.py). ``stats`` counts batches, requests and the seconds spent inside
``run_batch`` (``busy_s``: the accelerator's busy time; utilisation = busy_s / wall time).

A request whose caller was cancelled (episode deadline) is dropped before its batch starts. When
``run_batch`` raises on a batch of several requests, each request is run again on its own, so one
bad request (say, a token id outside the vocabulary) fails only itself with
:class:`PolicyBackendError`; the others get their results, and the batcher goes on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from agentrl.policy.base import PolicyBackendError

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result=None, error=None) -> None:
    """Hand a result to the caller's loop (from the worker thread); a closed loop has no caller."""
    try:
        loop.call_soon_threadsafe(_resolve, future, result, error)
    except RuntimeError:  # the loop was closed (its run ended): nobody waits for this result
        pass


def _resolve(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up (cancelled) meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class DynamicBatcher(Generic[Item, Result]):
    def __init__(
        self, run_batch: Callable[[list[Item]], list[Result]], max_batch_size: int = 8, max_wait_s: float = 0.005
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.stats = {"batches": 0, "requests": 0, "busy_s": 0.0}
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="agentrl-batcher", daemon=True)
                self._thread.start()
        future = loop.create_future()
        self._requests.put((item, future, loop))
        return await future

    async def aclose(self) -> None:
        """Stop the worker thread after the batch it is running (if any)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._requests.put(_STOP)
            await asyncio.to_thread(thread.join)

    def _collect(self) -> list | None:
        """The next batch: the first request, plus whatever arrives within ``max_wait_s``."""
        first = self._requests.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = self._requests.get_nowait() if remaining <= 0 else self._requests.get(timeout=remaining)
            except queue.Empty:
                break
            if request is _STOP:
                self._requests.put(_STOP)  # finish this batch, then stop
                break
            batch.append(request)
        return batch

    def _run(self, batch: list) -> None:
        """Run ``batch`` and deliver its results; a failure of several requests retries them one by one."""
        start = time.perf_counter()
        try:
            results = self.run_batch([item for item, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - one failed batch fails its requests, not the batcher
            results, error = None, exc
        finally:
            self.stats["busy_s"] += time.perf_counter() - start
            self.stats["batches"] += 1
            self.stats["requests"] += len(batch)
        if results is not None:
            for (_, future, loop), result in zip(batch, results, strict=True):
                _deliver(loop, future, result)
        elif len(batch) > 1:
            for request in batch:
                self._run([request])
        else:
            _, future, loop = batch[0]
            _deliver(loop, future, None, PolicyBackendError(f"request failed: {type(error).__name__}: {error}"))

    def _serve(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            batch = [(item, future, loop) for item, future, loop in batch if not future.done()]
            if batch:
                self._run(batch)
