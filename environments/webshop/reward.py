"""WebShop's purchase reward (``web_agent_site/engine/goal.py``), rewritten from its formula.

For a goal with attributes A, options O and price cap p_u, buying product P with chosen option
values C gives::

    R = (n_att + n_opt + r_price) / (|A| + |O| + 1) * r_type

    n_att   = #{a in A : token_set_ratio(a, p) > 85 for some attribute p of P,
                         or a is a substring of lower(Title), of lower(BulletPoints joined by " ")
                         or of lower(Description) — each field searched on its own}
    n_opt   = min(|O|, #{c in C : norm(c) in norm(O)                       if c's option is "size",
                                  token_set_ratio(norm(o), norm(c)) > 85 for some o in O  otherwise,
                                  or norm(c) is a substring of one of those three fields})
    r_price = 1[price(P) <= p_u]
    r_type  = 1.0; 0.5 if none of (query_match, category_match, title_score > 0.2);
              then 0.1 if title_score < 0.1; then 0.0 if title_score == 0

``token_set_ratio`` is rapidfuzz's with WebShop's preprocessing (``thefuzz`` lower-cases and turns
every non-alphanumeric character into a space, so "x-large" contains the token "large").
``norm`` is :func:`normalize_color`: the first word of WebShop's colour list found in the string,
else the string itself. n_opt is counted over the chosen options, like WebShop's
``get_option_reward``; the ``min`` is ours: without it a product with more option dimensions
than the goal could score R > 1. ``query_match``: same scrape query; ``category_match``: the
breadcrumbs share at least 2 levels; ``title_score = |set(nouns(goal title)) & set(nouns(bought
title))| / len(nouns(goal title))`` — the denominator counts a repeated noun each time, as
WebShop's list of spaCy tokens does (0.2 when the goal title has no noun). The synthetic
catalog knows each title's nouns (``name_nouns``), so no tagger is needed.

Success is R == 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from rapidfuzz import fuzz, utils

MATCH_THRESHOLD = 85

# WebShop's colour list (``engine/normalize.py``, COLOR_SET), in its order (alphabetical):
# normalize_color returns the first one *contained* in the string, so "navy blue" -> "blue",
# "pearl white" -> "white", "cherry red" -> "red" — and, WebShop's substring quirk, "cashew" -> "ash".
COLORS = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue",
    "blush", "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne",
    "charcoal", "cheetah", "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral",
    "cranberry", "cream", "crystal", "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia",
    "gold", "granite", "grape", "graphite", "grass", "gray", "green", "grey", "heather", "indigo",
    "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light", "lilac", "lime", "magenta",
    "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom", "mustard",
    "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple",
    "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull",
    "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise",
    "violet", "walnut", "wheat", "white", "wine", "yellow",
)
# Options whose values WebShop compares exactly (after colour normalization), not fuzzily.
EXACT_MATCH_OPTIONS = ("size",)


def normalize_color(value: str) -> str:
    """The first colour word of :data:`COLORS` that occurs in ``value`` (a substring test), else ``value``."""
    for color in COLORS:
        if color in value:
            return color
    return value


def fuzzy_score(a: str, b: str) -> float:
    """rapidfuzz ``token_set_ratio`` with WebShop's preprocessing (lower case, punctuation -> space)."""
    return fuzz.token_set_ratio(a, b, processor=utils.default_process)


def fuzzy_match(a: str, b: str) -> bool:
    return fuzzy_score(a, b) > MATCH_THRESHOLD


def options_collide(a: str, b: str) -> bool:
    """True when two option values would be taken for each other by the option reward."""
    return fuzzy_match(normalize_color(a), normalize_color(b))


def product_fields(product) -> tuple[str, str, str]:
    """lower(Title), lower(BulletPoints joined by spaces), lower(Description): searched one by one."""
    return product.title.lower(), " ".join(product.bullet_points).lower(), product.description.lower()


def count_attribute_matches(
    goal_attributes: Iterable[str], product_attributes: list[str], fields: Iterable[str]
) -> int:
    """n_att: goal attributes matched fuzzily by a product attribute or contained in one text field."""
    fields = tuple(fields)
    return sum(
        any(fuzzy_match(p, g) for p in product_attributes) or any(g in f for f in fields) for g in goal_attributes
    )


def count_option_matches(goal_options: Iterable[str], chosen: dict[str, str], fields: Iterable[str] = ()) -> int:
    """n_opt, counted over the *chosen* options as WebShop does, at most ``len(goal_options)``.

    A chosen value (colour-normalized) counts if it equals a goal value (size options) or fuzzily
    matches one (other options), or if the bought product's title / bullet points / description
    contains it.
    """
    goals = [normalize_color(g) for g in goal_options]
    fields = tuple(fields)
    n = 0
    for name, value in chosen.items():
        value = normalize_color(value)
        if name.lower() in EXACT_MATCH_OPTIONS:
            matched = value in goals
        else:
            matched = any(fuzzy_match(g, value) for g in goals)
        n += matched or any(value in f for f in fields)
    return min(n, len(goals))


def title_score(goal_nouns: list[str], bought_nouns: list[str]) -> float:
    """Shared distinct nouns over the goal title's noun count, repeats included (WebShop's)."""
    if not goal_nouns:
        return 0.2
    return len(set(goal_nouns) & set(bought_nouns)) / len(goal_nouns)


def breadcrumb_levels(breadcrumb: str) -> set[str]:
    return {level.strip() for level in breadcrumb.split("›")}


def type_reward(query_match: bool, category_match: bool, t_score: float) -> float:
    """r_type from WebShop's three signals (see the module docstring)."""
    r_type = 1.0
    if not (query_match or category_match or t_score > 0.2):
        r_type = 0.5
    if t_score < 0.1:
        r_type = 0.1
    if t_score == 0.0:
        r_type = 0.0
    return r_type


@dataclasses.dataclass(frozen=True)
class RewardBreakdown:
    """Every term of the reward, as logged in ``info["reward_breakdown"]``."""

    reward: float
    n_att: int
    n_att_total: int
    n_opt: int
    n_opt_total: int
    r_price: int
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float

    @property
    def success(self) -> bool:
        return self.reward == 1.0


def compute_reward(goal, product, chosen_options: dict[str, str]) -> RewardBreakdown:
    """R for buying ``product`` (a :class:`~.catalog.Product`) with ``chosen_options`` under ``goal``."""
    fields = product_fields(product)
    n_att = count_attribute_matches(goal.attributes, product.attributes, fields)
    n_opt = count_option_matches(goal.goal_options.values(), chosen_options, fields)
    r_price = int(product.price <= goal.price_upper)
    query_match = product.query == goal.query
    category_match = (
        len(breadcrumb_levels(product.product_category) & breadcrumb_levels(goal.product_category)) >= 2
    )
    t_score = title_score(goal.name_nouns, product.name_nouns)
    r_type = type_reward(query_match, category_match, t_score)
    total = len(goal.attributes) + len(goal.goal_options) + 1
    reward = (n_att + n_opt + r_price) / total * r_type
    return RewardBreakdown(
        reward=reward,
        n_att=n_att,
        n_att_total=len(goal.attributes),
        n_opt=n_opt,
        n_opt_total=len(goal.goal_options),
        r_price=r_price,
        r_type=r_type,
        query_match=query_match,
        category_match=category_match,
        title_score=t_score,
    )
