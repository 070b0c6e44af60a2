"""A retrieval server many processes share (Search-R1's ``retrieval_server.py`` API) and its client.

Server: ``POST /retrieve`` with ``{"queries": [...], "topk": 3, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents", "source"}, "score"}, ...], ...]}`` (one list per
query; without ``return_scores`` each entry is the bare document; ``source`` is our addition). ``GET /health`` reports the corpus size.
Requests that arrive together are **micro-batched**: a single worker drains every pending request
(up to ``max_batch`` queries), runs one ``search_batch`` in a thread (the event loop keeps
accepting requests meanwhile) and answers each — a bm25s batch costs less per query than single
searches, so throughput grows with the number of clients instead of falling. Start one with::

    python -m agentrl_envs.search.service --port 8000

and point envs at it: ``agentrl.make("agentrl/SearchQA-v0", retriever_url="http://127.0.0.1:8000")``.

Client: :class:`RemoteRetriever` (one pooled aiohttp session per event loop it is used on). The
``SearchEnv``s of a process share one per URL (:meth:`RemoteRetriever.shared`), so a loop's
episodes, however many, reuse one pool of connections; each env holds it from its first search
to its ``aclose``, and the last to let go closes the loop's session. A server that
cannot be reached or fails raises :class:`RetrievalUnavailable`, an
:class:`~agentrl.errors.InfraError`, so the rollout engine treats it as an infrastructure
failure (retried, masked) and never as a reward of 0.
"""

from __future__ import annotations

import argparse
import asyncio
import weakref
from typing import ClassVar

import aiohttp
from agentrl_envs.search.corpus import Document
from agentrl_envs.search.retrieval import BM25Retriever, Hit, shared_retriever
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrl.errors import InfraError

MAX_QUERIES = 512


class RetrievalUnavailable(InfraError):
    """The retrieval server could not be reached or answered with an error."""


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queries: list[str] = Field(min_length=1, max_length=MAX_QUERIES)
    topk: int = Field(default=3, ge=1, le=100)
    return_scores: bool = True


class MicroBatcher:
    """Coalesce concurrent ``search(queries, k)`` calls into one ``search_batch`` per drain."""

    def __init__(self, retriever: BM25Retriever, max_batch: int = 256):
        self.retriever = retriever
        self.max_batch = max_batch
        self._pending: asyncio.Queue[tuple[list[str], int, asyncio.Future]] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self.batches = 0  # how many search_batch calls served the requests so far

    async def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._pending.put((queries, k, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            size = len(batch[0][0])
            while not self._pending.empty() and size < self.max_batch:
                batch.append(self._pending.get_nowait())
                size += len(batch[-1][0])
            k = max(item[1] for item in batch)  # one retrieval at the largest k, cut per request
            queries = [q for item in batch for q in item[0]]
            try:
                results = await asyncio.to_thread(self.retriever.search_batch, queries, k)
            except Exception as exc:  # noqa: BLE001 — answer every waiter; the server turns it into a 500
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for item_queries, item_k, future in batch:
                rows = results[start : start + len(item_queries)]
                start += len(item_queries)
                if not future.done():
                    future.set_result([row[:item_k] for row in rows])

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


BATCHER: web.AppKey[MicroBatcher] = web.AppKey("batcher", MicroBatcher)


def make_app(retriever: BM25Retriever | None = None, max_batch: int = 256) -> web.Application:
    retriever = retriever or shared_retriever()
    batcher = MicroBatcher(retriever, max_batch)

    async def retrieve(request: web.Request) -> web.Response:
        try:
            body = RetrieveRequest.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        try:
            results = await batcher.search(body.queries, body.topk)
        except Exception as exc:  # noqa: BLE001 — a failed search is a 500 for this request, not a dead server
            return web.json_response({"error": f"retrieval failed: {type(exc).__name__}: {exc}"}, status=500)

        def document(doc: Document) -> dict:
            return {"id": doc.id, "contents": doc.contents, "source": doc.source}

        payload = [
            [
                {"document": document(h.doc), "score": h.score} if body.return_scores else document(h.doc)
                for h in hits
            ]
            for hits in results
        ]
        return web.json_response({"result": payload})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "documents": len(retriever.corpus)})

    async def stop(app: web.Application) -> None:
        await batcher.aclose()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[BATCHER] = batcher
    app.on_cleanup.append(stop)
    app.router.add_post("/retrieve", retrieve)
    app.router.add_get("/health", health)
    return app


def _document(raw: dict) -> Document:
    title, _, text = raw["contents"].partition("\n")
    return Document(id=raw["id"], title=title, text=text, source=raw.get("source", ""))


class RemoteRetriever:
    """Client of a retrieval server: its owner closes it with :meth:`aclose`, or, for the process's
    :meth:`shared` one, each user takes it with :meth:`acquire` and lets go with :meth:`release`."""

    _instances: ClassVar[dict[str, RemoteRetriever]] = {}

    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._holders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> users

    @classmethod
    def shared(cls, url: str) -> RemoteRetriever:
        """The process's client of ``url``. A client per episode would open (and, at its close,
        leave in TIME_WAIT) a connection per episode, so many concurrent ones churn through the
        ephemeral ports; shared, a loop's episodes reuse at most the pool's 64."""
        if url not in cls._instances:
            cls._instances[url] = cls(url)
        return cls._instances[url]

    def acquire(self) -> RemoteRetriever:
        """Count a user on the running loop (until its :meth:`release`)."""
        loop = asyncio.get_running_loop()
        self._holders[loop] = self._holders.get(loop, 0) + 1
        return self

    async def release(self) -> None:
        """A user of the running loop is done; the last one closes the loop's session."""
        loop = asyncio.get_running_loop()
        users = self._holders.pop(loop, 0) - 1
        if users > 0:
            self._holders[loop] = users
        else:
            await self.aclose()

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(timeout=self.timeout, connector=aiohttp.TCPConnector(limit=64))
            self._sessions[loop] = session
        return session

    async def asearch_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        try:
            async with self._session().post(
                f"{self.url}/retrieve", json={"queries": list(queries), "topk": k, "return_scores": True}
            ) as response:
                payload = await response.json()
                if response.status != 200:
                    raise RetrievalUnavailable(
                        f"retrieval server {self.url}: {payload.get('error', response.status)}"
                    )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetrievalUnavailable(f"retrieval server {self.url} unreachable: {exc!r}") from exc
        return [[Hit(_document(e["document"]), float(e["score"])) for e in row] for row in payload["result"]]

    async def aclose(self) -> None:
        """Close the session of the running loop."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve BM25 retrieval over the agentrl search corpus.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
