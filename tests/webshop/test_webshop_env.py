"""The WebShop env: gymnasium contract, state machine, info, fork, sharing, oracle and random agents."""

import gc

import numpy as np
import pytest
from agentrl_envs.webshop import WebShopEnv
from agentrl_envs.webshop.shop import live_shops
from gymnasium.utils.env_checker import check_env

import agentrl
from agentrl.env import OracleAgent, RandomAgent, aplay_episode


@pytest.fixture(scope="module")
def env():
    env = agentrl.make("agentrl/WebShop-v0")
    yield env
    env.close()


def first_goal_with_options(env, n_options=2):
    return next(t.id for t in env.tasks.split("test") if len(env.shop.goals[t.id].goal_options) == n_options)


def test_registered_and_passes_gymnasium_checks(env):
    assert "agentrl/WebShop-v0" in agentrl.list_envs()
    check_env(env, skip_render_check=True)


def test_index_page_and_search_results(env):
    obs, info = env.reset(seed=1, options={"split": "test"})
    goal = env.goal
    assert obs.startswith(f"WebShop [SEP] Instruction: [SEP] {goal.instruction_text} [SEP] Search")
    assert obs.endswith("Available actions: search[<your query>]")
    assert info["state_key"] == "index" and info["tool_calls"] == 0
    obs, reward, terminated, truncated, info = env.step("search[  Organic   COFFEE ]")
    assert (reward, terminated, truncated, info["valid_action"], info["tool_calls"]) == (
        0.0,
        False,
        False,
        True,
        1,
    )
    assert info["state_key"] == "results|Organic COFFEE|1"
    assert "Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next >" in obs
    assert "< Prev" not in obs
    results = [c for c in env.page.clickables if c.startswith("b0")]
    assert len(results) == 10
    product = env.shop.by_asin[results[0].upper()]
    assert f"{results[0].upper()} [SEP] {product.title}" in obs
    # page through: 5 pages of 10, no "Next >" on the last
    for page in range(2, 6):
        obs, *_, info = env.step("click[Next >]")
        assert f"Page {page} (Total results: 50)" in obs and info["tool_calls"] == 0
    assert "next >" not in env.page.clickables and "< prev" in env.page.clickables
    obs, *_, info = env.step("click[< prev]")
    assert info["state_key"] == "results|Organic COFFEE|4"
    obs, *_, info = env.step("click[back to search]")
    assert info["state_key"] == "index" and "search[<your query>]" in obs


def _results(env, action):
    obs, _, _, _, info = env.step(action)
    asins = [c.upper() for c in env.page.clickables if c.startswith("b0")]
    total = int(obs.split("(Total results: ")[1].split(")")[0])
    return total, asins, info


def test_webshops_debug_queries_filter_the_catalog(env):
    products = env.shop.products
    env.reset(seed=3)
    total, asins, _ = _results(env, "search[<c> food]")
    assert total == sum(p.category == "food" for p in products) == 200
    assert all(env.shop.by_asin[a].category == "food" for a in asins) and len(asins) == 10
    for query, keep in (
        ("<q> cookies", lambda p: p.query == "cookies"),
        ("<a> gluten free", lambda p: "gluten free" in p.attributes),
    ):
        env.step("click[back to search]")
        total, asins, _ = _results(env, f"search[{query}]")
        expected = [p.asin for p in products if keep(p)]
        assert total == len(expected) > 10 and asins == expected[:10], query
    env.step("click[back to search]")
    assert _results(env, "search[<a> no such attribute]")[0] == 0  # WebShop raises KeyError; an empty page here


def test_random_debug_query_is_seeded_and_stable_across_pages(env):
    def first_two_pages(seed):
        env.reset(seed=seed)
        total, page1, info = _results(env, "search[<r>]")
        assert total == 50 and info["state_key"].startswith("results|<r>|1|")
        _, page2, _ = _results(env, "click[next >]")
        return page1, page2

    a1, a2 = first_two_pages(5)
    assert len(set(a1 + a2)) == 20  # one sample of 50, paged (WebShop would redraw on every page)
    assert first_two_pages(5) == (a1, a2)
    assert first_two_pages(6)[0] != a1


def test_item_page_options_sub_pages_and_prev(env):
    task_id = first_goal_with_options(env)
    env.reset(seed=0, options={"task_id": task_id})
    goal, product = env.goal, env.shop.by_asin[env.goal.asin]
    env.step(f"search[{product.title}]")
    obs, *_, info = env.step(f"click[{goal.asin}]")  # asins are matched case-insensitively
    assert info["valid_action"] and info["state_key"].startswith(f"item|{product.title}|1|{goal.asin}|")
    assert (
        f"Price: ${product.price:.2f} [SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews"
        in obs
    )
    (name, value), (_name2, value2) = goal.goal_options.items()
    obs, *_, info = env.step(f"click[{value}]")
    assert f"{value} (selected)" in obs and info["state_key"].endswith(f"|{name}={value}")
    obs, *_, info = env.step("click[features]")
    assert info["state_key"].endswith(f"|{name}={value}|features")
    assert product.bullet_points[0] in obs and "buy now" not in env.page.clickables
    obs, *_, info = env.step("click[< prev]")  # back on the item page, option kept
    assert f"{value} (selected)" in obs and "buy now" in env.page.clickables
    env.step(f"click[{value2}]")
    obs, *_, info = env.step("click[< prev]")  # back to the same results page; options dropped
    assert info["state_key"] == f"results|{product.title}|1"


def test_invalid_actions_are_observations(env):
    env.reset(seed=2, options={"split": "test"})
    page_before = env.render()
    for action in ["buy it", "click[buy now]", "search[]", "jump[x]"]:
        obs, reward, terminated, _truncated, info = env.step(action)
        assert not info["valid_action"] and info["error"] and info["tool_calls"] == 0
        assert obs.startswith("Invalid action:") and obs.endswith(page_before.split("\n")[-1])
        assert info["state_key"] == "index" and reward == 0.0 and not terminated
    env.reset(seed=2, options={"split": "test"})
    env.step("search[chair]")
    obs, *_, info = env.step("search[table]")  # no search bar on a results page
    assert not info["valid_action"] and "back to search" in info["error"]


def test_buying_scores_and_reports(env):
    task_id = first_goal_with_options(env)
    env.reset(seed=0, options={"task_id": task_id})
    goal = env.goal
    env.step(f"search[{env.shop.by_asin[goal.asin].title}]")
    env.step(f"click[{goal.asin}]")
    obs, reward, terminated, truncated, info = env.step("click[buy now]")  # no option chosen
    b = info["reward_breakdown"]
    n_att = len(goal.attributes)
    assert terminated and not truncated and not info["success"]
    assert (b["n_att"], b["n_opt"], b["r_price"], b["r_type"]) == (n_att, 0, 1, 1.0)
    assert reward == pytest.approx((n_att + 1) / (n_att + 2 + 1)) == info["score"]
    assert info["purchased"] == goal.asin and "Your score (min 0.0, max 1.0)" in obs


def test_oracle_reaches_one_on_every_test_goal(env):
    test = env.tasks.split("test")
    assert len(test) > 400
    for task in test:
        env.reset(seed=0, options={"task_id": task.id})
        for _ in range(env.config.max_turns):
            _, reward, terminated, truncated, info = env.step(env.oracle_action())
            if terminated or truncated:
                break
        assert terminated and reward == 1.0 and info["success"], task.id


async def test_random_agent_is_far_below_the_oracle(env):
    scores, successes = [], []
    for seed in range(60):
        traj = await aplay_episode(env, RandomAgent(env, seed=seed), seed=seed)
        scores.append(traj.final_reward)
        successes.append(traj.success)
    oracle = await aplay_episode(env, OracleAgent(env), seed=0)
    assert oracle.success and oracle.final_reward == 1.0
    assert np.mean(scores) < 0.3 and np.mean(successes) < 0.1


def test_same_seed_same_episode(env):
    def run(seed):
        obs, _ = env.reset(seed=seed)
        rng, trace = np.random.default_rng(7), [obs]
        for _ in range(8):
            obs, reward, terminated, truncated, _ = env.step(env.random_action(rng))
            trace.append((obs, reward))
            if terminated or truncated:
                break
        return env.task.id, trace

    assert run(11) == run(11)
    assert run(11)[0] != run(12)[0]


def test_fork_is_an_independent_twin(env):
    task_id = first_goal_with_options(env)
    env.reset(seed=5, options={"task_id": task_id})
    goal = env.goal
    env.step(f"search[{env.shop.by_asin[goal.asin].title}]")
    env.step(f"click[{goal.asin}]")
    twin = env.fork()
    assert twin.state_key() == env.state_key() and twin.render() == env.render() and twin.shop is env.shop
    value = next(iter(goal.goal_options.values()))
    a = twin.step(f"click[{value}]")
    assert env.state_key() != twin.state_key()  # the original did not move
    b = env.step(f"click[{value}]")
    assert a[:4] == b[:4] and a[4]["state_key"] == b[4]["state_key"] and twin.turn == env.turn == 3
    replayed = super(WebShopEnv, env).fork()  # the base class's replaying fork agrees
    assert replayed.state_key() == env.state_key() and replayed.render() == env.render()


def test_max_turns_truncates(env):
    env.reset(seed=3)
    for turn in range(1, 16):
        *_, terminated, truncated, info = env.step("click[back to search]" if turn % 2 else "search[tea]")
    assert truncated and not terminated and info["truncation"] == "max_turns" and turn == 15


def test_instances_share_one_shop_and_close_frees_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path))
    a = WebShopEnv(num_products=40, catalog_seed=77)
    b = WebShopEnv(num_products=40, catalog_seed=77)
    private = WebShopEnv(num_products=40, catalog_seed=77, shared_index=False)
    a.reset(seed=0)
    b.reset(seed=0)
    private.reset(seed=0)
    assert a.shop is b.shop and private.shop is not a.shop
    twin = a.fork()
    before = live_shops()
    for e in (a, b, twin, private):
        e.close()
    gc.collect()
    assert live_shops() == before - 1
