"""WebShop's purchase reward (``web_agent_site/engine/goal.py``), rewritten from its formula.

For a goal with attributes A, options O and price cap p_u, buying product P with chosen option
values C gives::

    R = (n_att + n_opt + r_price) / (|A| + |O| + 1) * r_type

    n_att   = #{a in A : token_set_ratio(a, p) > 85 for some attribute p of P,
                         or a is a substring of lower(Title), lower(BulletPoints) or lower(Description)}
    n_opt   = #{o in O : token_set_ratio(norm(o), norm(c)) > 85 for some c in C}
    r_price = 1[price(P) <= p_u]
    r_type  = 1.0; 0.5 if none of (query_match, category_match, title_score > 0.2);
              then 0.1 if title_score < 0.1; then 0.0 if title_score == 0

``token_set_ratio`` is rapidfuzz's with WebShop's preprocessing (``thefuzz`` lower-cases and turns
every non-alphanumeric character into a space, so "x-large" contains the token "large").
``norm`` is :func:`normalize_color`: the first colour word of :data:`COLORS` found in the string,
else the string itself. ``query_match``: same scrape query; ``category_match``: the breadcrumbs
share at least 2 levels; ``title_score = |nouns(goal title) & nouns(bought title)| /
|nouns(goal title)|`` (0.2 when the goal title has no noun). WebShop finds nouns with spaCy; the
synthetic catalog knows each title's nouns (``name_nouns``), so no tagger is needed.

Success is R == 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from rapidfuzz import fuzz, utils

MATCH_THRESHOLD = 85

# Colour words in search order: normalize_color returns the first one contained in the string
# (alphabetical, like WebShop's list, so "navy blue" normalizes to "blue").
COLORS = (
    "amber",
    "apricot",
    "aqua",
    "beige",
    "berry",
    "black",
    "blue",
    "blush",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "charcoal",
    "cherry",
    "chocolate",
    "coffee",
    "copper",
    "coral",
    "cream",
    "crimson",
    "cyan",
    "denim",
    "ecru",
    "emerald",
    "espresso",
    "fuchsia",
    "gold",
    "gray",
    "green",
    "grey",
    "indigo",
    "ivory",
    "jade",
    "khaki",
    "lavender",
    "lemon",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "mint",
    "mocha",
    "mustard",
    "natural",
    "navy",
    "nude",
    "oak",
    "olive",
    "orange",
    "peach",
    "pearl",
    "pink",
    "plum",
    "purple",
    "red",
    "rose",
    "ruby",
    "rust",
    "sage",
    "salmon",
    "sand",
    "sapphire",
    "silver",
    "tan",
    "taupe",
    "teal",
    "tortoise",
    "turquoise",
    "violet",
    "walnut",
    "wine",
    "white",
    "yellow",
)


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


def count_attribute_matches(goal_attributes: Iterable[str], product_attributes: list[str], text: str) -> int:
    """n_att: goal attributes matched fuzzily by a product attribute or found in the product text."""
    return sum(any(fuzzy_match(p, g) for p in product_attributes) or g in text for g in goal_attributes)


def count_option_matches(goal_options: Iterable[str], chosen_options: Iterable[str]) -> int:
    """n_opt: goal option values matched (after colour normalization) by some chosen value."""
    chosen = [normalize_color(c) for c in chosen_options]
    return sum(any(fuzzy_match(c, normalize_color(g)) for c in chosen) for g in goal_options)


def title_score(goal_nouns: list[str], bought_nouns: list[str]) -> float:
    goal = set(goal_nouns)
    if not goal:
        return 0.2
    return len(goal & set(bought_nouns)) / len(goal)


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
    text = " ".join([product.title, " ".join(product.bullet_points), product.description]).lower()
    n_att = count_attribute_matches(goal.attributes, product.attributes, text)
    n_opt = count_option_matches(goal.goal_options.values(), chosen_options.values())
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
