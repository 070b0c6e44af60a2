"""BM25 product search (bm25s), WebShop's stand-in for its Lucene index.

Documents are :meth:`Product.search_text` (WebShop's indexed string). Text is lower-cased, split
into words, English stop words dropped and words Snowball-stemmed (PyStemmer) — close to
Lucene's English analyzer. A query returns at most ``top_k`` (50) products with a positive
score, best first; ties keep catalog order, so results are deterministic.

Rollout groups repeat the same queries many times, so results are memoized per normalized
query (an LRU of ``cache_size`` entries).
"""

from __future__ import annotations

import functools

import bm25s
import numpy as np
import Stemmer
from agentrl_envs.webshop.catalog import Product

TOP_K = 50


class SearchEngine:
    """A BM25 index over one catalog. ``search(query) -> tuple of asins``."""

    def __init__(self, products: list[Product], top_k: int = TOP_K, cache_size: int = 4096):
        self.asins = [p.asin for p in products]
        self.top_k = min(top_k, len(products))
        self._tokenizer = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")
        corpus = self._tokenizer.tokenize(
            [p.search_text() for p in products], show_progress=False, return_as="tuple"
        )
        self._index = bm25s.BM25()
        self._index.index(corpus, show_progress=False)
        self.search = functools.lru_cache(maxsize=cache_size)(self._search)

    def _search(self, query: str) -> tuple[str, ...]:
        ids = self._tokenizer.tokenize(
            [query.lower()], update_vocab=False, show_progress=False, return_as="ids"
        )[0]
        # Words the catalog never uses map to the tokenizer's empty-string id; they score nothing.
        unknown = self._tokenizer.word_to_id.get("")
        ids = [i for i in ids if i != unknown]
        if not ids:
            return ()
        scores = self._index.get_scores(ids)
        order = np.lexsort((np.arange(len(scores)), -scores))[: self.top_k]  # score desc, then catalog order
        return tuple(self.asins[i] for i in order if scores[i] > 0)
