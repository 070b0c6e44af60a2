"""Shopping goals built by WebShop's synthetic-goal rules, with fixed splits.

For each product (``web_agent_site/engine/goal.py``, ``get_synthetic_goals``):

* **attributes** — the instruction attributes: 1 to 3 of the product's attributes (WebShop used
  human-annotated ones), fixed per product.
* **price clause** — from [10, 20, ..., 990] take the first 4 values above the product's price;
  if at least 2 exist, sample 2 and take the larger as ``price_upper`` and append ", and price
  lower than {p:.2f} dollars"; else ``price_upper = 1e6`` and no clause. (WebShop compares with
  the lower end of a price range while the product is bought at a price drawn from the range,
  so a few of its goals cannot reach R = 1; here the cap is above the shown price, so every goal can.)
* **options** — one goal per combination of option values, phrased
  " with {name}: {value}, and {name}: {value}".

The lead sentence is one of 120 phrasings (an opening x a frame, :data:`OPENINGS`, :data:`FRAMES`),
picked by a hash of the goal id. A goal's id is
``"<asin>:<value>|<value>"``; its split is a hash of the id (:func:`agentrl.env.tasks.hash_split`),
so splits never depend on a seed or on the order of goals.
"""

from __future__ import annotations

import hashlib
import itertools
import random

from agentrl_envs.webshop.catalog import Product
from agentrl_envs.webshop.taxonomy import PRODUCT_TYPES
from pydantic import BaseModel, ConfigDict

from agentrl.env import TaskSet

PRICE_RANGE = [10.0 * i for i in range(1, 100)]
NO_PRICE_CAP = 1_000_000.0
TEST_FRACTION = 0.1
DEV_FRACTION = 0.1

# The lead sentence: an opening (the ways WebShop's human instructions start) and a frame
# joining the attributes and the product noun — 20 x 6 = 120 phrasings, picked by the goal id.
OPENINGS = (
    "i need",
    "i am looking for",
    "i'm looking for",
    "looking for",
    "i want",
    "i want to buy",
    "i would like",
    "i'd like to get",
    "i wish to buy",
    "i am searching for",
    "i'm shopping for",
    "find me",
    "get me",
    "help me find",
    "can you find me",
    "could you get me",
    "please find",
    "show me",
    "search for",
    "buy me",
)
FRAMES = (
    "{open} {attrs} {noun}",
    "{open} some {attrs} {noun}",
    "{open} {noun} that {be} {attrs}",
    "{open} {noun} which {be} {attrs}",
    "{open} {noun}, {attrs}",
    "{open} {noun} with these features: {attrs}",
)
_NOUN_BY_QUERY = {t.query: t for t in PRODUCT_TYPES}


class Goal(BaseModel):
    """One instruction, in WebShop's goal schema (plus the id and the product's title nouns)."""

    model_config = ConfigDict(frozen=True)

    goal_id: str
    asin: str
    category: str
    query: str
    name: str
    name_nouns: list[str]
    product_category: str
    instruction_text: str
    attributes: list[str]
    goal_options: dict[str, str]
    price_upper: float


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lead_sentence(opening: str, frame: str, attributes: list[str], noun: str) -> str:
    plural = noun.endswith("s") and not noun.endswith("ss")  # "cookies", "jeans"; not "dress"
    return frame.format(open=opening, attrs=_and(attributes), noun=noun, be="are" if plural else "is")


def price_clause(price: float, rng: random.Random) -> tuple[float, str]:
    above = [p for p in PRICE_RANGE if p > price][:4]
    if len(above) < 2:
        return NO_PRICE_CAP, ""
    upper = max(rng.sample(above, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def product_goals(product: Product, seed: int = 0) -> list[Goal]:
    """Every goal WebShop's rules derive from ``product`` (one per option combination)."""
    rng = random.Random(f"goals/{seed}/{product.asin}")  # str seeds hash deterministically (SHA-512)
    k = rng.randint(1, min(3, len(product.attributes)))
    attributes = sorted(rng.sample(product.attributes, k), key=product.attributes.index)
    price_upper, price_text = price_clause(product.price, rng)
    noun = _NOUN_BY_QUERY[product.query].noun.lower()
    names = sorted(product.options)
    goals = []
    for combination in itertools.product(*(product.options[n] for n in names)):
        goal_options = dict(zip(names, combination))
        goal_id = f"{product.asin}:{'|'.join(combination)}"
        pick = int(hashlib.sha256(f"lead/{seed}/{goal_id}".encode()).hexdigest(), 16)
        opening, frame = OPENINGS[pick % len(OPENINGS)], FRAMES[pick // len(OPENINGS) % len(FRAMES)]
        option_text = ", and ".join(f"{n}: {v}" for n, v in goal_options.items())
        option_text = f" with {option_text}" if option_text else ""
        goals.append(
            Goal(
                goal_id=goal_id,
                asin=product.asin,
                category=product.category,
                query=product.query,
                name=product.title,
                name_nouns=product.name_nouns,
                product_category=product.product_category,
                instruction_text=lead_sentence(opening, frame, attributes, noun) + option_text + price_text,
                attributes=attributes,
                goal_options=goal_options,
                price_upper=price_upper,
            )
        )
    return goals


def build_goals(products: list[Product], seed: int = 0) -> list[Goal]:
    return [g for p in products for g in product_goals(p, seed)]


def goal_tasks(goals: list[Goal]) -> TaskSet:
    """Tasks keyed by goal id, split 80/10/10 by hashing the id."""
    items = ((g.goal_id, {"instruction": g.instruction_text, "asin": g.asin}) for g in goals)
    return TaskSet.from_items(items, test_fraction=TEST_FRACTION, dev_fraction=DEV_FRACTION)
