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
        # a repeated goal noun counts in the denominator each time (WebShop's token list):
        (["lumina", "cookies", "cookies", "kids"], ["brava", "cookies"], False, False, 1 / 4, 1.0),
        (["cookie", "box", "cookie", "cookie", "kids"], ["cookie"], False, False, 1 / 5, 0.5),  # distinct: 1/3
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


def test_colour_normalization_uses_webshops_colour_list():
    assert normalize_color("navy blue") == "blue"  # "blue" comes before "navy" in the colour list
    assert normalize_color("rose gold") == "gold"
    assert normalize_color("pearl white") == "white"  # "pearl" is not one of WebShop's colours
    assert normalize_color("cherry red") == "red"
    assert normalize_color("cherry") == "cherry"
    assert normalize_color("cashew") == "ash"  # WebShop's substring test, kept
    assert normalize_color("12 pack") == "12 pack"
    assert count_option_matches(["navy blue"], {"color": "sky blue"}) == 1
    assert count_option_matches(["pearl white"], {"color": "white"}) == 1
    # "cherry red" -> "red" vs "cherry": token_set_ratio = 2*1/(3+6) = 22 (LCS "r") -> no match
    assert count_option_matches(["cherry red"], {"color": "cherry"}) == 0
    assert count_option_matches(["black"], {"color": "white"}) == 0


def test_size_options_match_exactly_others_fuzzily():
    # size: "x-large" is not "large" (fuzzy would give 100); other options: fuzzy > 85
    assert count_option_matches(["navy blue", "large"], {"color": "black", "size": "x-large"}) == 0
    assert count_option_matches(["large"], {"size": "large"}) == 1
    assert count_option_matches(["x-large"], {"style": "large"}) == 1  # fuzzy: {large} <= {x, large}


def test_chosen_option_named_in_the_product_text_counts_and_n_opt_is_capped():
    fields = ("brava lemon cookies", "", "")
    # lemon is not the goal's vanilla, but WebShop credits an option the product's text names
    assert count_option_matches(["vanilla"], {"flavor name": "lemon"}, fields) == 1
    assert count_option_matches(["vanilla"], {"flavor name": "lemon"}, ("brava cookies", "", "")) == 0
    # two chosen options, one goal option: WebShop would count 2 (R > 1); capped at |O| = 1
    assert count_option_matches(["vanilla"], {"flavor name": "vanilla", "style": "lemon"}, fields) == 1


def test_colour_and_size_rules_in_the_full_reward():
    goal = make_goal(
        attributes=["gluten free"], goal_options={"color": "pearl white", "size": "large"}, price_upper=30.0
    )
    product = make_product(options={"color": ["white", "black"], "size": ["large", "x-large"]})
    # white ~ pearl white (both "white"), x-large != large: n_att 1, n_opt 1, r_price 1 of 4
    r = compute_reward(goal, product, {"color": "white", "size": "x-large"})
    assert (r.n_att, r.n_opt, r.r_price, r.r_type) == (1, 1, 1, 1.0) and r.reward == pytest.approx(3 / 4)
    assert compute_reward(goal, product, {"color": "white", "size": "large"}).reward == 1.0


def test_attributes_are_searched_in_each_text_field_separately():
    goal = make_goal(attributes=["gluten free", "kids organic"])
    # joined, "...cookies for kids" + "organic: ..." would contain "kids organic"; field by field it does not
    product = make_product(title="Brava Cookies for Kids", bullet_points=["ORGANIC: tasty"])
    r = compute_reward(goal, product, {"flavor name": "vanilla", "pack count": "12 pack"})
    # n_att 1 (gluten free, an attribute) + n_opt 2 + r_price 1 = 4 of 5
    assert r.n_att == 1 and r.reward == pytest.approx(0.8)
    # the bullet points are joined with spaces among themselves (WebShop's " ".join)
    across = make_product(bullet_points=["tasty and KIDS", "ORGANIC certified"])
    assert compute_reward(goal, across, {"flavor name": "vanilla", "pack count": "12 pack"}).n_att == 2


def test_price_clause_rule():
    import random

    # price 25: the first four points above are 30, 40, 50, 60; the larger of two samples is >= 40
    uppers = {price_clause(25.0, random.Random(s))[0] for s in range(200)}
    assert uppers == {40.0, 50.0, 60.0}
    upper, text = price_clause(975.0, random.Random(0))  # only 980 and 990 remain
    assert upper == 990.0 and text == ", and price lower than 990.00 dollars"
    assert price_clause(985.0, random.Random(0)) == (NO_PRICE_CAP, "")  # only 990: no clause
