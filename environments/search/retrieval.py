"""BM25 retrieval over the corpus: built once, cached on disk, shared by every env in a process.

``shared_retriever()`` returns the process-wide :class:`BM25Retriever`. The first call loads the
index from ``$AGENTRL_CACHE/search/bm25-<corpus fingerprint>/`` (memory-mapped, so processes on
one machine share its pages through the OS page cache), or builds it (about 2–3 s for 10.7k
documents) and saves it there atomically. Every :class:`~agentrl_envs.search.env.SearchEnv` in the
process then searches the same object: N envs cost one index, not N.

Scoring is Okapi BM25 as implemented by ``bm25s`` (Lucene variant, k1 = 1.5, b = 0.75) over
lower-cased, English-stopword-filtered, Snowball-stemmed tokens of each document's ``contents``
(title line + text). Documents with score 0 (no query term in common) are never returned.

Any object with ``search_batch(queries, k)`` and ``asearch_batch(queries, k)`` is a retriever; :mod:`.service` provides one that talks to a shared HTTP retrieval server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentrl_envs.search.corpus import Corpus, Document, cache_dir, load_corpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    doc: Document
    score: float


class Retriever(Protocol):
    def search_batch(self, queries: list[str], k: int) -> list[list[Hit]]: ...

    async def asearch_batch(self, queries: list[str], k: int) -> list[list[Hit]]: ...


def _tokenizer():
    import bm25s
    import Stemmer

    return bm25s.tokenization.Tokenizer(stopwords="en", stemmer=Stemmer.Stemmer("english"))


class BM25Retriever:
    """A bm25s index over a :class:`Corpus`; thread-safe for concurrent searches (read-only)."""

    def __init__(self, corpus: Corpus, index, tokenizer, build_seconds: float | None = None):
        self.corpus = corpus
        self._index = index
        self._tokenizer = tokenizer
        self.build_seconds = build_seconds  # None when loaded from the disk cache

    @classmethod
    def build(cls, corpus: Corpus) -> BM25Retriever:
        import bm25s

        start = time.perf_counter()
        tokenizer = _tokenizer()
        # As a Tokenized (ids + the word -> id vocabulary), so the saved vocabulary has string keys:
        # bm25s writes it with orjson when that is installed, and orjson rejects integer keys.
        tokens = tokenizer.tokenize([d.contents for d in corpus.documents], show_progress=False, return_as="tuple")
        index = bm25s.BM25()
        index.index(tokens, show_progress=False)
        return cls(corpus, index, tokenizer, build_seconds=time.perf_counter() - start)

    def save(self, directory: Path) -> None:
        self._index.save(str(directory), show_progress=False)
        self._tokenizer.save_vocab(str(directory))
        self._tokenizer.save_stopwords(str(directory))

    @classmethod
    def load(cls, corpus: Corpus, directory: Path, mmap: bool = True) -> BM25Retriever:
        import bm25s

        index = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
        tokenizer = _tokenizer()
        tokenizer.load_vocab(str(directory))
        tokenizer.load_stopwords(str(directory))
        return cls(corpus, index, tokenizer)

    @classmethod
    def open(cls, corpus: Corpus | None = None, directory: Path | None = None) -> BM25Retriever:
        """Load the cached index for ``corpus`` or build and cache it. Processes that share the
        cache (env workers on one node) build it once: the first holds a lock file beside the
        cache while it builds, the others wait for it and then load its cache."""
        corpus = corpus or load_corpus()
        directory = directory or cache_dir() / f"bm25-{corpus.fingerprint[:16]}"
        with _build_lock(directory):
            return cls._load_or_build(corpus, directory)

    @classmethod
    def _load_or_build(cls, corpus: Corpus, directory: Path) -> BM25Retriever:
        if (directory / "params.index.json").is_file():
            try:
                return cls.load(corpus, directory)
            except (OSError, ValueError):  # a damaged cache is rebuilt, never fatal
                shutil.rmtree(directory, ignore_errors=True)
        retriever = cls.build(corpus)
        staging = None
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".bm25-", dir=directory.parent))
            retriever.save(staging)
            os.rename(staging, directory)  # atomic: a concurrent builder either wins or we do
        except (OSError, TypeError, ValueError) as exc:  # the cache is an optimisation, never fatal
            if not directory.is_dir():
                log.warning("could not cache the BM25 index at %s: %s", directory, exc)
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return retriever

    def search(self, query: str, k: int = 3) -> list[Hit]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        if not queries:
            return []
        k = max(1, min(int(k), len(self.corpus)))
        tokens = self._tokenizer.tokenize(
            list(queries), update_vocab=False, show_progress=False, return_as="ids"
        )
        positions, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        docs = self.corpus.documents
        return [
            [Hit(docs[int(p)], float(s)) for p, s in zip(row_p, row_s) if s > 0]
            for row_p, row_s in zip(positions, scores)
        ]

    async def asearch_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        # A BM25 query takes ~1 ms of CPU: running it inline is cheaper than a thread hop.
        return self.search_batch(queries, k)


_shared: BM25Retriever | None = None
_shared_lock = threading.Lock()


@contextlib.contextmanager
def _build_lock(directory: Path):
    """An exclusive lock on ``.<directory>.lock`` beside ``directory`` (none where it cannot be made)."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        lock = open(directory.parent / f".{directory.name}.lock", "a")  # noqa: SIM115 - held across the yield
    except OSError:  # a read-only cache: no lock, the build below is not cached either
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def shared_retriever() -> BM25Retriever:
    """The process-wide BM25 retriever over the default corpus (built or loaded on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = BM25Retriever.open()
        return _shared


async def ashared_retriever() -> BM25Retriever:
    """:func:`shared_retriever` without blocking the event loop on the first load."""
    if _shared is not None:
        return _shared
    return await asyncio.to_thread(shared_retriever)


def render_hits(hits: list[Hit], max_doc_chars: int | None = None) -> str:
    """Search-R1's rendering: ``Doc {i}(Title: {title}) {text}`` one per line, numbered from 1."""
    lines = []
    for i, hit in enumerate(hits, start=1):
        text = hit.doc.text
        if max_doc_chars is not None and len(text) > max_doc_chars:
            text = text[:max_doc_chars].rstrip() + "…"
        lines.append(f"Doc {i}(Title: {hit.doc.title}) {text}")
    return "\n".join(lines) if lines else "No documents matched the query."
