"""WebShop's reward, checked against values worked out by hand from the formula."""

import pytest
from agentrl_envs.webshop.catalog import Product
from agentrl_envs.webshop.goals import NO_PRICE_CAP, Goal, price_clause
from agentrl_envs.webshop.reward import (
    compute_reward,
    count_option_matches,
    fuzzy_score,
    normalize_color,
    title_score,
    type_reward,
)


def make_goal(**overrides) -> Goal:
    fields = {
        "goal_id": "G:vanilla|12 pack",
        "asin": "B0GOAL0001",
        "category": "food",
        "query": "cookies",
        "name": "Lumina Gluten Free Cookies for Kids",
        "name_nouns": ["lumina", "cookies", "kids"],
        "product_category": "Grocery & Gourmet Food › Snacks › Cookies",
        "instruction_text": "i need gluten free and non gmo cookies",
        "attributes": ["gluten free", "non gmo"],
        "goal_options": {"flavor name": "vanilla", "pack count": "12 pack"},
        "price_upper": 30.0,
    }
    return Goal(**{**fields, **overrides})


def make_product(**overrides) -> Product:
    fields = {
        "asin": "B0BOUGHT01",
        "title": "Brava Gluten Free Soft Baked Cookies",
        "bullet_points": ["GLUTEN FREE: tasty"],
        "description": "The Brava soft baked cookies is gluten free.",
        "attributes": ["gluten free"],
        "options": {"flavor name": ["vanilla", "lemon"], "pack count": ["6 pack", "12 pack"]},
        "pricing": [25.0],
        "price": 25.0,
        "category": "food",
        "query": "cookies",
        "product_category": "Grocery & Gourmet Food › Snacks › Cookies",
        "name_nouns": ["brava", "cookies"],
        "reviews": [],
    }
    return Product(**{**fields, **overrides})


def test_reference_example_is_three_fifths():
    # A = {gluten free, non gmo}: only "gluten free" matches -> n_att = 1
    # O = {vanilla, 12 pack}, chosen {vanilla, 6 pack} -> n_opt = 1; price 25 <= 30 -> r_price = 1
    # query matches -> r_type = 1;  R = (1 + 1 + 1) / (2 + 2 + 1) = 0.6
    r = compute_reward(make_goal(), make_product(), {"flavor name": "vanilla", "pack count": "6 pack"})
    assert (r.n_att, r.n_opt, r.r_price, r.r_type) == (1, 1, 1, 1.0)
    assert r.reward == pytest.approx(0.6)
    assert not r.success


def test_no_shared_title_noun_zeroes_the_reward():
    product = make_product(name_nouns=["brava", "crackers"])  # goal nouns: lumina, cookies, kids
    r = compute_reward(make_goal(), product, {"flavor name": "vanilla", "pack count": "6 pack"})
    assert r.title_score == 0.0 and r.r_type == 0.0 and r.reward == 0.0


def test_everything_matched_is_success():
    product = make_product(attributes=["gluten free", "non gmo"])
    r = compute_reward(make_goal(), product, {"flavor name": "vanilla", "pack count": "12 pack"})
    assert r.reward == 1.0 and r.success


def test_attribute_found_in_text_counts_and_price_cap_is_inclusive():
    # "non gmo" is not an attribute but appears in a bullet point -> counts; price == cap -> r_price 1
    product = make_product(bullet_points=["GLUTEN FREE: tasty", "Certified NON GMO ingredients"], price=30.0)
    r = compute_reward(make_goal(), product, {"flavor name": "vanilla", "pack count": "12 pack"})
    assert (r.n_att, r.r_price, r.reward) == (2, 1, 1.0)
    over = compute_reward(
        make_goal(), make_product(price=30.01), {"flavor name": "vanilla", "pack count": "12 pack"}
    )
    # n_att 1 + n_opt 2 + r_price 0 = 3 of 5
    assert over.r_price == 0 and over.reward == pytest.approx(0.6)


def test_no_options_chosen():
    r = compute_reward(make_goal(), make_product(), {})  # (1 + 0 + 1) / 5
    assert r.n_opt == 0 and r.reward == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("goal_nouns", "bought_nouns", "query_match", "category_match", "expected_score", "expected_type"),
    [
        (["lumina", "cookies", "kids"], ["brava", "cookies"], False, False, 1 / 3, 1.0),  # 1/3 > 0.2
        (["a", "b", "c", "d", "e"], ["a", "z"], False, False, 0.2, 0.5),  # 0.2 is not > 0.2
        (["a", "b", "c", "d", "e"], ["a", "z"], False, True, 0.2, 1.0),  # category match rescues it
        (["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"], ["a"], True, True, 1 / 11, 0.1),  # < 0.1
        (["a", "b"], ["c"], True, True, 0.0, 0.0),
        ([], ["c"], False, False, 0.2, 0.5),  # no goal noun: title_score 0.2
    ],
)
def test_type_reward(goal_nouns, bought_nouns, query_match, category_match, expected_score, expected_type):
    score = title_score(goal_nouns, bought_nouns)
    assert score == pytest.approx(expected_score)
    assert type_reward(query_match, category_match, score) == expected_type


def test_category_match_needs_two_shared_breadcrumb_levels():
    # bought chips, not cookies: no query match; levels {Grocery & Gourmet Food, Snacks} shared -> match;
    # title nouns share none -> r_type 0 regardless.
    chips = make_product(
        query="potato chips",
        product_category="Grocery & Gourmet Food › Snacks › Chips & Crisps",
        name_nouns=["brava", "cookies"],
    )
    r = compute_reward(make_goal(), chips, {})
    assert not r.query_match and r.category_match and r.r_type == 1.0
    tea = make_product(
        query="tea", product_category="Grocery & Gourmet Food › Beverages › Tea", name_nouns=["tea"]
    )
    r = compute_reward(make_goal(), tea, {})
    assert not r.category_match and r.r_type == 0.0


def test_fuzzy_scores_by_hand():
    # token_set_ratio("12 pack", "6 pack"): intersection "pack"; best is ratio("pack", "6 pack") = 2*4/10
    assert fuzzy_score("12 pack", "6 pack") == pytest.approx(80.0)
    # WebShop's preprocessing splits "x-large" into {x, large}, a superset of {large}: 100
    assert fuzzy_score("large", "x-large") == 100.0
    assert fuzzy_score("Gluten Free", "gluten free") == 100.0


def test_colour_normalization():
    assert normalize_color("navy blue") == "blue"  # "blue" comes before "navy" in the colour list
    assert normalize_color("rose gold") == "gold"
    assert normalize_color("12 pack") == "12 pack"
    assert count_option_matches(["navy blue"], ["sky blue"]) == 1
    assert count_option_matches(["navy blue", "large"], ["black", "x-large"]) == 1
    assert count_option_matches(["black"], ["white"]) == 0


def test_price_clause_rule():
    import random

    # price 25: the first four points above are 30, 40, 50, 60; the larger of two samples is >= 40
    uppers = {price_clause(25.0, random.Random(s))[0] for s in range(200)}
    assert uppers == {40.0, 50.0, 60.0}
    upper, text = price_clause(975.0, random.Random(0))  # only 980 and 990 remain
    assert upper == 990.0 and text == ", and price lower than 990.00 dollars"
    assert price_clause(985.0, random.Random(0)) == (NO_PRICE_CAP, "")  # only 990: no clause
