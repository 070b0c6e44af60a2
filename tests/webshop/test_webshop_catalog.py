"""The synthetic catalog, goals and splits: schema, determinism, caching, distractors."""

import itertools
import re
from collections import Counter

import pytest
from agentrl_envs.webshop.catalog import generate_catalog, load_catalog
from agentrl_envs.webshop.goals import (
    DEV_FRACTION,
    FRAMES,
    OPENINGS,
    TEST_FRACTION,
    goal_tasks,
    lead_sentence,
)
from agentrl_envs.webshop.reward import fuzzy_match, normalize_color, options_collide, product_fields
from agentrl_envs.webshop.taxonomy import PRODUCT_TYPES

from agentrl.env.tasks import hash_split


@pytest.fixture()
def shop(default_shop):
    return default_shop


def test_catalog_size_schema_and_categories(shop):
    products = shop.products
    assert len(products) == 1000
    assert Counter(p.category for p in products) == {
        c: 200 for c in ("beauty", "fashion", "food", "furniture", "electronics")
    }
    assert len({p.asin for p in products}) == 1000
    for p in products:
        assert re.fullmatch(r"B0[A-Z0-9]{8}", p.asin)
        assert 3 <= len(p.bullet_points) <= 5 and p.description and p.attributes and p.options
        assert p.price in p.pricing or p.pricing[0] <= p.price <= p.pricing[1]
        assert len(p.product_category.split("›")) >= 3
        assert p.name_nouns[0] in p.title.lower()


def test_generation_is_deterministic_and_cached(tmp_path, monkeypatch):
    a, b = generate_catalog(40, seed=3), generate_catalog(40, seed=3)
    assert a == b and generate_catalog(40, seed=4) != a
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path))
    assert load_catalog(40, seed=3) == a
    (cached,) = (tmp_path / "webshop").glob("catalog-*-n40-seed3.json")
    assert load_catalog(40, seed=3) == a  # read back from the cache
    cached.write_text("{not json")
    assert load_catalog(40, seed=3) == a  # a corrupt cache is regenerated


def test_no_two_option_values_of_a_product_collide(shop):
    for p in shop.products:
        values = [v for vs in p.options.values() for v in vs]
        assert len(set(values)) == len(values)
        assert not any(options_collide(x, y) for x, y in itertools.combinations(values, 2)), p.asin


def test_no_option_value_is_named_in_its_products_text(shop):
    # The option reward credits a chosen value found in the title / bullets / description, so a
    # value there would score a wrong choice; the generator leaves such values out.
    for p in shop.products:
        fields = product_fields(p)
        for value in (v for vs in p.options.values() for v in vs):
            assert not any(normalize_color(value) in f for f in fields), (p.asin, value)
    values = {v for p in shop.products for vs in p.options.values() for v in vs}
    assert {"pearl white", "cherry red"} <= values  # multi-word colours WebShop normalizes


def test_attribute_vocabularies_are_fuzzy_distinct():
    for t in PRODUCT_TYPES:
        for x, y in itertools.combinations(t.attributes, 2):
            assert not fuzzy_match(x, y), (t.noun, x, y)


def test_distractors_lack_attributes_everywhere(shop):
    """A product never earns an attribute of its type that it lacks (neither fuzzily nor in its text)."""
    vocab = {t.query: t.attributes for t in PRODUCT_TYPES}
    for p in shop.products:
        text = " ".join([p.title, *p.bullet_points, p.description]).lower()
        for attr in set(vocab[p.query]) - set(p.attributes):
            assert attr not in text, (p.asin, attr)


def test_every_product_has_same_type_distractors(shop):
    by_type = {}
    for p in shop.products:
        by_type.setdefault(p.query, []).append(p)
    for p in shop.products:
        close = [
            q for q in by_type[p.query] if q is not p and len(set(q.attributes) & set(p.attributes)) >= 2
        ]
        assert close, p.asin


def test_every_product_is_found_by_its_query(shop):
    """The oracle searches the goal's query: its product must be among the 50 results."""
    pages = Counter()
    for p in shop.products:
        results = shop.search(p.query)
        assert p.asin in results, p.asin
        pages[results.index(p.asin) // 10 + 1] += 1
    assert pages[1] < 500 and pages[2] > 100  # the oracle has to page, not just click the first hit


def test_goals_follow_webshop_rules(shop):
    goals = list(shop.goals.values())
    expected = sum(len(list(itertools.product(*p.options.values()))) for p in shop.products)
    assert len(goals) == expected > 4000
    for g in goals[::37]:
        product = shop.by_asin[g.asin]
        assert 1 <= len(g.attributes) <= 3 and set(g.attributes) <= set(product.attributes)
        assert set(g.goal_options) == set(product.options)
        option_text = ", and ".join(f"{k}: {v}" for k, v in g.goal_options.items())
        assert f" with {option_text}" in g.instruction_text
        assert g.price_upper > product.price
        if g.price_upper < 1e6:
            assert g.instruction_text.endswith(f", and price lower than {g.price_upper:.2f} dollars")


def test_instructions_are_varied_and_name_every_attribute(shop):
    # each test goal's lead is one of the 20 openings x 6 frames, with all its attributes and noun
    used = Counter()
    for task in shop.tasks.split("test"):
        g = shop.goals[task.id]
        noun = next(t.noun.lower() for t in PRODUCT_TYPES if t.query == g.query)
        leads = [
            (o, f)
            for o, f in itertools.product(OPENINGS, FRAMES)
            if g.instruction_text.startswith(lead_sentence(o, f, g.attributes, noun) + (" with" if g.goal_options else ""))
        ]
        assert len(leads) == 1, g.instruction_text
        used[leads[0]] += 1
        assert all(a in g.instruction_text for a in g.attributes) and noun in g.instruction_text
    assert len(OPENINGS) * len(FRAMES) == 120
    assert len({o for o, _ in used}) == 20 and len({f for _, f in used}) == 6 and len(used) > 90
    assert max(used.values()) < 0.03 * sum(used.values())  # no phrasing dominates (was 1 in 8)
    assert lead_sentence("i need", FRAMES[2], ["gluten free"], "cookies") == "i need cookies that are gluten free"
    assert lead_sentence("i need", FRAMES[2], ["sulfate free", "vegan"], "dress") == (
        "i need dress that is sulfate free and vegan"
    )


def test_splits_are_fixed_by_goal_id(shop):
    goals = list(shop.goals.values())
    tasks = shop.tasks
    reordered = goal_tasks(goals[::-1])
    for t in tasks:
        assert reordered.get(t.id).split == t.split == hash_split(t.id, TEST_FRACTION, DEV_FRACTION)
    sizes = tasks.split_sizes()
    n = len(tasks)
    assert abs(sizes["test"] / n - 0.1) < 0.03 and abs(sizes["dev"] / n - 0.1) < 0.03
