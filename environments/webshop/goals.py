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
from typing import Annotated, Literal

from agentrl_envs.webshop.catalog import Product
from agentrl_envs.webshop.taxonomy import PRODUCT_TYPES
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agentrl.env import Task, TaskSet
from agentrl.env.taskfile import field_error, read_jsonl
from agentrl.env.tasks import hash_split

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

    @classmethod
    def of_product(cls, product, goal_id: str, instruction_text: str, attributes: list[str],
                   goal_options: dict[str, str], price_upper: float) -> Goal:
        """A goal asking for ``product``: the product's own fields, plus what the goal wants."""
        return cls(
            goal_id=goal_id, asin=product.asin, category=product.category, query=product.query,
            name=product.title, name_nouns=product.name_nouns, product_category=product.product_category,
            instruction_text=instruction_text, attributes=attributes, goal_options=goal_options,
            price_upper=price_upper,
        )


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


def option_text(goal_options: dict[str, str]) -> str:
    text = ", and ".join(f"{n}: {v}" for n, v in goal_options.items())
    return f" with {text}" if text else ""


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
        text = lead_sentence(opening, frame, attributes, noun) + option_text(goal_options) + price_text
        goals.append(Goal.of_product(product, goal_id, text, attributes, goal_options, price_upper))
    return goals


def build_goals(products: list[Product], seed: int = 0) -> list[Goal]:
    return [g for p in products for g in product_goals(p, seed)]


def goal_tasks(goals: list[Goal]) -> TaskSet:
    """Tasks keyed by goal id, split 80/10/10 by hashing the id."""
    items = ((g.goal_id, {"instruction": g.instruction_text, "asin": g.asin}) for g in goals)
    return TaskSet.from_items(items, test_fraction=TEST_FRACTION, dev_fraction=DEV_FRACTION)


# ---------------------------------------------------------------------- your own goals
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class GoalLine(BaseModel):
    """One line of a ``tasks=PATH`` file: a goal over a catalog product.

    ``{"asin": "B0…", "attributes": ["gluten free"], "goal_options": {"flavor name": "lemon"}}``
    asks for that product with those attributes and option values. Optional: ``price_upper`` (the
    price cap, default none), ``instruction`` (default: built like the bundled goals' text, with
    the option and price clauses), ``id`` (default ``"<file stem>/<line>"``) and ``split``
    (default: a hash of the id).
    """

    model_config = ConfigDict(extra="forbid")

    asin: Text
    attributes: list[Text] = Field(min_length=1)
    goal_options: dict[str, Text] = {}
    price_upper: float | None = Field(default=None, gt=0)
    instruction: Text | None = None
    id: Text | None = None
    split: Literal["train", "dev", "test"] | None = None


def load_goal_file(path: str, by_asin: dict[str, Product]) -> tuple[dict[str, Goal], TaskSet]:
    """The goals of a ``tasks=PATH`` file (checked against the catalog ``by_asin``) and their tasks."""
    goals: dict[str, Goal] = {}
    splits: dict[str, str] = {}
    for line in read_jsonl(path, GoalLine, key=lambda item: item.id, noun="goal"):
        item = line.item
        product = by_asin.get(item.asin.upper())
        if product is None:
            raise field_error(line.where, "asin", f"no product {item.asin!r} in the catalog")
        for name, value in item.goal_options.items():
            if name not in product.options:
                offered = ", ".join(product.options) or "none"
                raise field_error(line.where, f"goal_options.{name}", f"{product.asin} has no option {name!r} (it has: {offered})")
            if value not in product.options[name]:
                values = ", ".join(product.options[name])
                raise field_error(line.where, f"goal_options.{name}", f"{value!r} is not offered (choose from: {values})")
        price_upper = item.price_upper or NO_PRICE_CAP
        price_text = f", and price lower than {price_upper:.2f} dollars" if item.price_upper else ""
        noun = _NOUN_BY_QUERY[product.query].noun.lower()
        goal_id = line.key
        text = item.instruction or (
            lead_sentence(OPENINGS[0], FRAMES[0], item.attributes, noun) + option_text(item.goal_options) + price_text
        )
        goals[goal_id] = Goal.of_product(product, goal_id, text, item.attributes, item.goal_options, price_upper)
        splits[goal_id] = item.split or hash_split(goal_id, TEST_FRACTION, DEV_FRACTION)
    return goals, TaskSet(
        Task(id=g.goal_id, split=splits[g.goal_id], data={"instruction": g.instruction_text, "asin": g.asin})
        for g in goals.values()
    )
