"""Your own WebShop goals (tasks=PATH): schema, the reward on them by hand, and errors."""

import asyncio
import json

import pytest

import agentrl
from agentrl.env import EnvOptionError, aplay_episode, make_agent


@pytest.fixture(scope="module")
def product(default_shop):
    # a product with two option dimensions and "tea tree" but not "sulfate free" among its attributes
    return next(
        p
        for p in default_shop.products
        if len(p.options) == 2 and "tea tree" in p.attributes and "sulfate free" not in p.attributes
    )


def write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def test_own_goals_are_played_and_scored_by_webshops_formula(tmp_path, product):
    size, packs = product.options["size"], product.options["pack count"]
    rows = [
        {
            "asin": product.asin.lower(),
            "attributes": ["tea tree", "sulfate free"],
            "goal_options": {"size": size[1], "pack count": packs[0]},
            "price_upper": 990,
            "split": "test",
        },
        {"asin": product.asin, "attributes": ["tea tree"], "instruction": "my own words", "id": "mine"},
    ]
    env = agentrl.make("agentrl/WebShop-v0", tasks=write(tmp_path / "goals.jsonl", rows))
    assert env.tasks.ids() == ["goals/1", "mine"] and env.tasks.get("goals/1").split == "test"
    obs, _ = env.reset(options={"task_id": "goals/1"})
    assert env.goal.instruction_text == (
        f"i need tea tree and sulfate free shampoo with size: {size[1]}, and pack count: {packs[0]}, "
        "and price lower than 990.00 dollars"
    )
    assert env.goal.instruction_text in obs
    trajectory = asyncio.run(aplay_episode(env, make_agent("oracle", env), task_id="goals/1"))
    # n_att 1 (tea tree; sulfate free is nowhere on the product) + n_opt 2 + r_price 1, of 2 + 2 + 1
    assert trajectory.final_reward == pytest.approx(0.8) and not trajectory.success
    trajectory = asyncio.run(aplay_episode(env, make_agent("oracle", env), task_id="mine"))
    # no options asked; the oracle buys with none chosen: (1 + 0 + 1) / (1 + 0 + 1) = 1
    assert trajectory.final_reward == 1.0 and env.goal.instruction_text == "my own words"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"asin": "B0NOTHERE0", "attributes": ["x"]}, r"line 1: field 'asin': no product 'B0NOTHERE0' in the catalog"),
        ({"asin": "{asin}", "attributes": []}, r"line 1: field 'attributes': List should have at least 1 item"),
        ({"asin": "{asin}", "attributes": ["x"], "goal_options": {"color": "red"}}, r"field 'goal_options.color': B0\w+ has no option 'color' \(it has: "),
        ({"asin": "{asin}", "attributes": ["x"], "goal_options": {"size": "huge"}}, r"field 'goal_options.size': 'huge' is not offered \(choose from: "),
        ({"asin": "{asin}", "attributes": ["x"], "price_upper": -3}, r"field 'price_upper': Input should be greater than 0"),
        ({"asin": "{asin}", "attributes": ["x"], "colour": "red"}, r"field 'colour': Extra inputs are not permitted"),
        ({"attributes": ["x"]}, r"line 1: field 'asin': Field required"),
    ],
)
def test_bad_goal_files_name_the_line_and_the_field(tmp_path, product, row, message):
    row = {k: (v.format(asin=product.asin) if isinstance(v, str) else v) for k, v in row.items()}
    with pytest.raises(EnvOptionError, match=message):
        agentrl.make("agentrl/WebShop-v0", tasks=write(tmp_path / "g.jsonl", [row]))


def test_duplicate_ids_and_unreadable_files(tmp_path, product):
    row = {"asin": product.asin, "attributes": ["x"], "id": "a"}
    with pytest.raises(EnvOptionError, match=r"line 3: field 'id': goal 'a' is listed twice"):
        agentrl.make("agentrl/WebShop-v0", tasks=write(tmp_path / "g.jsonl", [row, "", row]))
    with pytest.raises(EnvOptionError, match=r"line 1: not valid JSON"):
        agentrl.make("agentrl/WebShop-v0", tasks=write(tmp_path / "h.jsonl", ["{'single': 'quotes'}"]))
    with pytest.raises(EnvOptionError, match=r"tasks: cannot read"):
        agentrl.make("agentrl/WebShop-v0", tasks=str(tmp_path / "missing.jsonl"))
