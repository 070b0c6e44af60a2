"""Dynamic batching: concurrent requests grouped into one call of a synchronous batch function.

The batcher takes the first waiting request, waits at most ``max_wait_s`` for more (up to
``max_batch_size``), and runs ``run_batch(items)`` in a worker thread so the event loop keeps
serving environments meanwhile. One batch runs at a time (one accelerator). ``stats`` counts
batches, requests and the seconds spent inside ``run_batch`` (``busy_s``: the accelerator's busy
time, from which utilisation = busy_s / wall time).

A request whose caller was cancelled (episode deadline) is dropped before its batch starts; an
exception in ``run_batch`` fails that batch's requests with :class:`PolicyBackendError` and the
batcher goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from agentrl.policy.base import PolicyBackendError

Item = TypeVar("Item")
Result = TypeVar("Result")


class DynamicBatcher(Generic[Item, Result]):
    def __init__(self, run_batch: Callable[[list[Item]], list[Result]], max_batch_size: int = 8, max_wait_s: float = 0.005):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.stats = {"batches": 0, "requests": 0, "busy_s": 0.0}
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue))
        future = loop.create_future()
        await self._queue.put((item, future))
        return await future

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._worker = self._queue = self._loop = None

    async def _serve(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - loop.time()
                try:
                    batch.append(queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(queue.get(), remaining))
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            batch = [(item, future) for item, future in batch if not future.done()]
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = await asyncio.to_thread(self.run_batch, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - one failed batch fails its requests, not the batcher
                error = PolicyBackendError(f"batch failed: {type(exc).__name__}: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            finally:
                self.stats["busy_s"] += time.perf_counter() - start
                self.stats["batches"] += 1
                self.stats["requests"] += len(batch)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
