"""A synthetic product catalog in WebShop's schema, generated deterministically from a seed.

Field names follow WebShop's product records (lower-cased): ``title`` = ``Title``/``name``,
``bullet_points`` = ``BulletPoints``/``small_description``, ``description`` =
``Description``/``full_description``, ``options`` = ``customization_options`` (option name ->
values, lower-cased), ``pricing`` (1 price, or 2 for a range), ``price`` (the price shown, drawn
once from the range like WebShop's ``uniform(lo, hi)``), ``category``, ``query``,
``product_category`` (breadcrumb ``"A › B › C"``), ``attributes`` (``Attributes``) and
``name_nouns`` — the title's nouns, which replace the spaCy tagger in the type reward.

Products come in *families* of about five per product type: a family shares a base set of three
attributes and each member swaps or adds one, and members offer different subsets of the same
option dimensions. So search alone cannot pick the product, and option choice matters.

Generation is pure (seed, size) -> catalog; the JSON is cached under ``$AGENTRL_CACHE/webshop``
(default ``~/.cache/agentrl/webshop``) and rebuilt when missing or unreadable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import string
from pathlib import Path

import numpy as np
from agentrl_envs.webshop.reward import normalize_color, options_collide
from agentrl_envs.webshop.taxonomy import (
    BRAND_HEADS,
    BRAND_TAILS,
    BULLET_TAILS,
    CATEGORY_ROOTS,
    FILLER_SENTENCES,
    PRODUCT_TYPES,
    REVIEW_TEMPLATES,
    ProductType,
)
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

CATALOG_VERSION = 2  # bump when generation changes, so stale caches are not reused
FAMILY_SIZE = 5
log = logging.getLogger(__name__)


class Review(BaseModel):
    model_config = ConfigDict(frozen=True)
    rating: int
    text: str


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    asin: str
    title: str
    bullet_points: list[str]
    description: str
    attributes: list[str]
    options: dict[str, list[str]]
    pricing: list[float]
    price: float
    category: str
    query: str
    product_category: str
    name_nouns: list[str]
    reviews: list[Review]

    def option_of(self, value: str) -> str | None:
        """The option dimension that offers ``value`` (values are unique within a product)."""
        for name, values in self.options.items():
            if value in values:
                return name
        return None

    def search_text(self) -> str:
        """WebShop's indexed text: Title, Description, first bullet point and "name: v1, v2, and v3"."""
        option_text = " ".join(f"{name}: {_join_and(values)}" for name, values in self.options.items())
        return " ".join([self.title, self.description, self.bullet_points[0], option_text]).lower()


_catalog_adapter = TypeAdapter(list[Product])


def _join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def seeded_rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _pick(rng: np.random.Generator, items, k: int) -> list:
    idx = rng.choice(len(items), size=min(k, len(items)), replace=False)
    return [items[i] for i in sorted(idx)]


def _option_values(
    rng: np.random.Generator, vocabulary: list[str], taken: list[str], k: int, text: str
) -> list[str]:
    """Up to ``k`` values in vocabulary order, none colliding (under the option reward) with another
    and none (colour-normalized) in the product's ``text``, which the option reward would credit."""
    chosen: list[str] = []
    for i in rng.permutation(len(vocabulary)):
        value = vocabulary[i]
        if normalize_color(value) in text:
            continue
        if not any(options_collide(value, other) for other in taken + chosen):
            chosen.append(value)
        if len(chosen) == k:
            break
    return sorted(chosen, key=vocabulary.index)


def _title_case(phrase: str) -> str:
    return " ".join(w if any(c.isdigit() for c in w) else w.capitalize() for w in phrase.split())


def _make_product(ptype: ProductType, family: dict, rng: np.random.Generator, asin: str) -> Product:
    # attributes: the family's base, with one swapped for, or one added from, the rest of the vocabulary
    base = family["attributes"]
    rest = [a for a in ptype.attributes if a not in base]
    attributes = list(base)
    if rest:
        extra = rest[int(rng.integers(len(rest)))]
        if rng.random() < 0.5:
            attributes[int(rng.integers(len(attributes)))] = extra
        else:
            attributes.append(extra)
    attributes = sorted(attributes, key=ptype.attributes.index)

    brand = family["brand"]
    modifier = ptype.modifiers[int(rng.integers(len(ptype.modifiers)))]
    shown = _pick(rng, attributes, int(rng.integers(1, 3)))
    audience = None
    if ptype.audiences and rng.random() < 0.6:
        audience = ptype.audiences[int(rng.integers(len(ptype.audiences)))]
    title = " ".join([brand, *(_title_case(a) for a in shown), modifier, ptype.noun])
    if audience:
        title += f" for {audience.capitalize()}"
    name_nouns = [brand.lower(), *ptype.nouns] + ([audience] if audience else [])

    bullets = [f"{a.upper()}: {BULLET_TAILS[int(rng.integers(len(BULLET_TAILS)))]}" for a in attributes]
    bullets = bullets[: int(rng.integers(3, 6))] if len(bullets) > 3 else bullets
    if len(bullets) < 3:
        bullets.append(
            f"{brand.upper()} {ptype.noun.upper()}: {BULLET_TAILS[int(rng.integers(len(BULLET_TAILS)))]}"
        )
    fillers = _pick(rng, FILLER_SENTENCES, 2)
    description = (
        f"The {brand} {modifier.lower()} {ptype.noun.lower()} is {_join_and(attributes)}. "
        + " ".join(fillers)
    )

    options: dict[str, list[str]] = {}
    taken: list[str] = []
    text = " ".join([title, *bullets, description]).lower()
    for name in family["dimensions"]:
        values = _option_values(rng, ptype.options[name], taken, int(rng.integers(2, 5)), text)
        options[name] = values
        taken += values

    lo, hi = ptype.price
    low = round(float(rng.uniform(lo, hi)), 2)
    if rng.random() < 0.3:
        high = round(low * float(rng.uniform(1.1, 1.4)), 2)
        pricing = [low, high]
        price = round(float(rng.uniform(low, high)), 2)
    else:
        pricing, price = [low], low

    reviews = [
        Review(
            rating=int(rng.integers(3, 6)),
            text=REVIEW_TEMPLATES[int(rng.integers(len(REVIEW_TEMPLATES)))].format(
                noun=ptype.noun.lower(), attr=a, Attr=a.capitalize()
            ),
        )
        for a in _pick(rng, attributes, int(rng.integers(0, 3)))
    ]
    return Product(
        asin=asin,
        title=title,
        bullet_points=bullets,
        description=description,
        attributes=attributes,
        options=options,
        pricing=pricing,
        price=price,
        category=ptype.category,
        query=ptype.query,
        product_category=f"{CATEGORY_ROOTS[ptype.category]} › {ptype.path}",
        name_nouns=name_nouns,
        reviews=reviews,
    )


def generate_catalog(num_products: int = 1000, seed: int = 0) -> list[Product]:
    """``num_products`` products spread evenly over the product types (pure function of its arguments)."""
    if num_products < len(PRODUCT_TYPES):
        raise ValueError(f"num_products must be at least {len(PRODUCT_TYPES)} (one per product type)")
    rng = seeded_rng("catalog", seed)
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    asins: set[str] = set()
    products: list[Product] = []
    per_type = [
        num_products // len(PRODUCT_TYPES) + (i < num_products % len(PRODUCT_TYPES))
        for i in range(len(PRODUCT_TYPES))
    ]
    for ptype, count in zip(PRODUCT_TYPES, per_type):
        family = None
        for i in range(count):
            if i % FAMILY_SIZE == 0:
                dims = list(ptype.options)
                family = {
                    "attributes": _pick(rng, list(ptype.attributes), 3),
                    "dimensions": _pick(rng, dims, int(rng.integers(1, min(2, len(dims)) + 1))),
                    "brand": BRAND_HEADS[int(rng.integers(len(BRAND_HEADS)))]
                    + BRAND_TAILS[int(rng.integers(len(BRAND_TAILS)))],
                }
            while (asin := "B0" + "".join(rng.choice(alphabet, 8))) in asins:
                pass
            asins.add(asin)
            products.append(_make_product(ptype, family, rng, asin))
    return products


def cache_dir() -> Path:
    return Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl")) / "webshop"


def load_catalog(num_products: int = 1000, seed: int = 0) -> list[Product]:
    """The catalog for (num_products, seed): read from the cache, or generated and cached."""
    path = cache_dir() / f"catalog-v{CATALOG_VERSION}-n{num_products}-seed{seed}.json"
    try:
        return _catalog_adapter.validate_json(path.read_bytes())
    except FileNotFoundError:
        pass
    except (OSError, ValidationError) as exc:
        log.warning("ignoring unreadable catalog cache %s: %s", path, exc)
    products = generate_catalog(num_products, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(_catalog_adapter.dump_json(products))
        tmp.replace(path)  # atomic: concurrent processes never read a half-written file
    except OSError as exc:
        log.warning("could not cache the catalog at %s: %s", path, exc)
    return products


def catalog_stats(products: list[Product]) -> dict:
    """Sizes worth reporting (products per category, option combinations, JSON size)."""
    per_category: dict[str, int] = {}
    for p in products:
        per_category[p.category] = per_category.get(p.category, 0) + 1
    return {
        "products": len(products),
        "per_category": per_category,
        "json_bytes": len(json.dumps([p.model_dump() for p in products])),
    }
