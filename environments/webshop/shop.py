"""The shop: one catalog, its goals and tasks, and one search index — shared per process.

Every env instance built with the same (num_products, seed) gets the same :class:`Shop` from
:func:`shared_shop`. The registry holds shops weakly: a shop lives while some env holds it and
is freed when the last one closes (WebShop's wrappers load a catalog and an index per worker;
verl-agent #91/#95 report the start-up time and memory that costs). ``Shop(...)`` directly
builds a private copy — what the benchmark uses as its per-instance baseline.
"""

from __future__ import annotations

import random
import threading
import weakref

from agentrl_envs.webshop.catalog import Product, load_catalog
from agentrl_envs.webshop.goals import Goal, build_goals, goal_tasks
from agentrl_envs.webshop.search import TOP_K, SearchEngine

from agentrl.env import TaskSet


class Shop:
    """Catalog (``products``, ``by_asin``), goals by id, their :class:`TaskSet` and the search engine."""

    def __init__(self, num_products: int = 1000, seed: int = 0):
        self.num_products, self.seed = num_products, seed
        self.products: list[Product] = load_catalog(num_products, seed)
        self.by_asin: dict[str, Product] = {p.asin: p for p in self.products}
        self.goals: dict[str, Goal] = {g.goal_id: g for g in build_goals(self.products, seed)}
        self.tasks: TaskSet = goal_tasks(list(self.goals.values()))
        self.search_engine = SearchEngine(self.products)

    def search(self, query: str, draw: int = 0) -> tuple[str, ...]:
        """The asins a search shows: BM25's top 50, or one of WebShop's debugging queries —

        * ``<r>``: 50 products at random (``draw`` seeds the sample, so a page can be rebuilt);
        * ``<a> attribute``: every product with exactly that attribute;
        * ``<c> category``: every product of that category (its first word, as WebShop reads it);
        * ``<q> query``: every product scraped with that query.
        """
        words = query.lower().split()
        head, rest = (words[0], " ".join(words[1:])) if words else ("", "")
        if head == "<r>":
            sample = random.Random(draw).sample(self.products, min(TOP_K, len(self.products)))
            return tuple(p.asin for p in sample)
        if head in ("<a>", "<c>", "<q>"):
            keep = {
                "<a>": lambda p: rest in p.attributes,
                "<c>": lambda p: p.category == (words[1:] or [""])[0],
                "<q>": lambda p: p.query == rest,
            }[head]
            return tuple(p.asin for p in self.products if keep(p))
        return self.search_engine.search(query)


_shops: weakref.WeakValueDictionary[tuple[int, int], Shop] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def shared_shop(num_products: int = 1000, seed: int = 0) -> Shop:
    """This process's shop for (num_products, seed), built on first use."""
    with _lock:
        shop = _shops.get((num_products, seed))
        if shop is None:
            shop = _shops[(num_products, seed)] = Shop(num_products, seed)
        return shop


def live_shops() -> int:
    """How many shared shops are alive in this process (for tests of ``close()``)."""
    return len(_shops)
