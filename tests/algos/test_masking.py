"""Exact masking, property-tested: every estimator and anchor mode against the per-row reference
implementations in ``per_row.py`` on random batches, and masked (infra-failed) trajectories,
tree leaves and branches inserted *anywhere* never change a valid row's advantage (to 1e-12) and
get exactly 0 themselves."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrl.algos import Pipeline, StepBatch, get_estimator, get_shaper
from agentrl.algos.shapers.partial_credit import trigram_cosine
from agentrl.types import RolloutTree, StepRecord, TreeLeaf, TreeNode

from . import per_row

# Similar keys (ratios 0.8–0.9) so that similarity clustering depends on the order of first use.
KEYS = ("abcdefghij", "abcdefghiX", "Xbcdefghij", "abcdeXghij", "zzzzzzzzzz")
THRESH = 0.85


@st.composite
def trajectory(draw, valid=None):
    n = draw(st.integers(1, 4))
    steps = st.lists
    return {
        "group": draw(st.integers(0, 2)),
        "valid": draw(st.booleans()) if valid is None else valid,
        "success": draw(st.booleans()),
        "rewards": draw(steps(st.sampled_from([0.0, 0.5, 1.0, 10.0]), min_size=n, max_size=n)),
        "states": draw(steps(st.integers(-1, len(KEYS) - 1), min_size=n, max_size=n)),
        "action_valid": draw(steps(st.booleans(), min_size=n, max_size=n)),
        "tools": draw(steps(st.integers(0, 3), min_size=n, max_size=n)),
        "texts": draw(steps(st.sampled_from(KEYS + ("print(1)", "")), min_size=n, max_size=n)),
        "entropy": draw(
            steps(
                steps(st.sampled_from([0.0, 0.2, 0.5, 1.0, 3.0]), min_size=0, max_size=3),
                min_size=n,
                max_size=n,
            )
        ),
    }


def chain_batch(trajs):
    rows = [(i, k) for i, t in enumerate(trajs) for k in range(len(t["rewards"]))]
    col = lambda key: [trajs[i][key][k] for i, k in rows]
    return StepBatch.from_chains(
        traj=[i for i, _ in rows],
        group=[t["group"] for t in trajs],
        reward=col("rewards"),
        success=[t["success"] for t in trajs],
        valid=[t["valid"] for t in trajs],
        action_valid=col("action_valid"),
        state=col("states"),
        tool_calls=col("tools"),
        n_tokens=[len(e) for e in col("entropy")],
        token_entropy=np.array([x for e in col("entropy") for x in e], dtype=np.float64),
        state_keys=KEYS,
        action_text=np.array(col("texts"), dtype=object),
    )


GIGPO_CONFIGS = [
    {"anchor_match": a, "penalty_mode": p, "episode_stats": s, "mode": m}
    for a in ("exact", "similarity")
    for p in ("row", "discounted")
    for s in ("trajectory", "step")
    for m in ("mean_std_norm", "mean_norm")
]


def gigpo_ref(trajs, cfg):
    return per_row.gigpo(
        trajs,
        KEYS,
        anchor_match=cfg["anchor_match"],
        thresh=THRESH,
        penalty_mode=cfg["penalty_mode"],
        episode_stats=cfg["episode_stats"],
        mode=cfg["mode"],
    )


def gigpo_cfg(cfg):
    return dict(cfg, similarity_thresh=THRESH)


# (name, config, reference) for every step-level estimator on chains.
CHAIN_CASES = [
    ("grpo", {}, per_row.grpo),
    ("grpo", {"mode": "mean_norm"}, lambda t: per_row.grpo(t, mode="mean_norm")),
    ("grpo", {"episode_stats": "step"}, lambda t: per_row.grpo(t, episode_stats="step")),
    ("rloo", {}, per_row.rloo),
    ("gtpo_turn", {}, per_row.gtpo_turn),
    ("gtpo_turn", {"norm_scope": "batch"}, lambda t: per_row.gtpo_turn(t, scope="batch")),
    ("grpo_s", {}, per_row.grpo_s),
    ("empg", {}, lambda t: per_row.empg(t, per_row.grpo(t))),
    (
        "empg",
        {"base": "gigpo", "base_config": gigpo_cfg(GIGPO_CONFIGS[4])},
        lambda t: per_row.empg(t, gigpo_ref(t, GIGPO_CONFIGS[4])),
    ),
] + [("gigpo", gigpo_cfg(c), lambda t, c=c: gigpo_ref(t, c)) for c in GIGPO_CONFIGS]
CASE_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CHAIN_CASES)]
TOKEN_CASES = [("joint", {}), ("split", {"norm": "split"})]

chains = st.lists(trajectory(), min_size=1, max_size=8)


@pytest.mark.parametrize("name, cfg, reference", CHAIN_CASES, ids=CASE_IDS)
@settings(max_examples=20, deadline=None)
@given(trajs=chains)
def test_chain_estimators_match_per_row_reference(name, cfg, reference, trajs):
    got = get_estimator(name)(chain_batch(trajs), cfg)
    np.testing.assert_allclose(got, reference(trajs), rtol=0, atol=1e-8)


@pytest.mark.parametrize("norm, cfg", TOKEN_CASES)
@settings(max_examples=20, deadline=None)
@given(trajs=chains)
def test_gtpo_entropy_matches_per_token_reference(norm, cfg, trajs):
    got = get_estimator("gtpo_entropy")(chain_batch(trajs), cfg)
    np.testing.assert_allclose(got, per_row.gtpo_entropy(trajs, norm=norm), rtol=0, atol=1e-8)


@settings(max_examples=20, deadline=None)
@given(trajs=chains)
def test_otc_then_grpo_matches_reference(trajs):
    out = Pipeline("grpo", shapers=[get_shaper("otc_grpo")])(chain_batch(trajs))
    shaped = per_row.otc_grpo_outcomes(trajs)
    expected = per_row.per_row(trajs, per_row.episode_scores(trajs, shaped))
    np.testing.assert_allclose(out.step, expected, rtol=0, atol=1e-8)


def insert_masked(trajs, masked, positions):
    """``trajs`` with each masked trajectory inserted at a position; the original rows' new indices."""
    out = [dict(t, origin=True) for t in trajs]
    for t, pos in zip(masked, positions):
        out.insert(pos % (len(out) + 1), dict(t, origin=False))
    rows = [r for r, (t, _) in enumerate((t, k) for t in out for k in t["rewards"]) if t["origin"]]
    return [{k: v for k, v in t.items() if k != "origin"} for t in out], np.asarray(rows)


masked_chains = st.lists(trajectory(valid=False), min_size=1, max_size=4)
positions = st.lists(st.integers(0, 100), min_size=4, max_size=4)


@pytest.mark.parametrize("name, cfg, reference", CHAIN_CASES, ids=CASE_IDS)
@settings(max_examples=20, deadline=None)
@given(trajs=chains, masked=masked_chains, at=positions)
def test_masked_trajectories_anywhere_change_nothing(name, cfg, reference, trajs, masked, at):
    mixed, kept = insert_masked(trajs, masked, at)
    est = get_estimator(name)
    clean, with_masked = est(chain_batch(trajs), cfg), est(chain_batch(mixed), cfg)
    np.testing.assert_allclose(with_masked[kept], clean, rtol=0, atol=1e-12)
    assert np.all(np.delete(with_masked, kept) == 0.0)


@pytest.mark.parametrize("norm, cfg", TOKEN_CASES)
@settings(max_examples=20, deadline=None)
@given(trajs=chains, masked=masked_chains, at=positions)
def test_masked_trajectories_anywhere_change_no_token_advantage(norm, cfg, trajs, masked, at):
    mixed, kept = insert_masked(trajs, masked, at)
    clean_batch, mixed_batch = chain_batch(trajs), chain_batch(mixed)
    kept_tokens = np.isin(mixed_batch.token_row, kept)
    est = get_estimator("gtpo_entropy")
    clean, with_masked = est(clean_batch, cfg), est(mixed_batch, cfg)
    np.testing.assert_allclose(with_masked[kept_tokens], clean, rtol=0, atol=1e-12)
    assert np.all(with_masked[~kept_tokens] == 0.0)


@settings(max_examples=20, deadline=None)
@given(trajs=chains)
def test_partial_credit_then_gtpo_turn_matches_reference(trajs):
    out = Pipeline("gtpo_turn", shapers=[get_shaper("gtpo_partial_credit")])(chain_batch(trajs))
    expected = per_row.gtpo_turn(per_row.partial_credit(trajs, trigram_cosine))
    np.testing.assert_allclose(out.step, expected, rtol=0, atol=1e-8)


SHAPED = [
    Pipeline("grpo", shapers=[get_shaper("otc_grpo")]),
    Pipeline("gtpo_turn", shapers=[get_shaper("gtpo_partial_credit")]),
]


@pytest.mark.parametrize("pipe", SHAPED, ids=["otc_grpo", "gtpo_partial_credit"])
@settings(max_examples=20, deadline=None)
@given(trajs=chains, masked=masked_chains, at=positions)
def test_masked_trajectories_anywhere_change_no_shaped_advantage(pipe, trajs, masked, at):
    mixed, kept = insert_masked(trajs, masked, at)
    clean, with_masked = pipe(chain_batch(trajs)), pipe(chain_batch(mixed))
    np.testing.assert_allclose(with_masked.step[kept], clean.step, rtol=0, atol=1e-12)
    assert np.all(np.delete(with_masked.step, kept) == 0.0)


# ---------------------------------------------------------------------------------- trees
@st.composite
def tree(draw, all_masked=False):
    n = draw(st.integers(1, 6))
    parents = [-1] + [draw(st.integers(-1, i - 1)) for i in range(1, n)]
    childless = [i for i in range(n) if i not in parents]
    leaf = st.tuples(st.sampled_from([0.0, 1.0, 0.5]), st.just(False) if all_masked else st.booleans())
    leaves = [(i, *draw(leaf)) for i in childless]
    # extra leaves anywhere: on inner nodes (branches that ended before their first step) or
    # a second leaf on a node that already has one
    leaves += [(draw(st.integers(0, n - 1)), *draw(leaf)) for _ in range(draw(st.integers(0, 2)))]
    order = draw(st.permutations(range(len(leaves))))  # leaves are recorded in completion order
    return {"group": draw(st.integers(0, 1)), "parents": parents, "leaves": [leaves[i] for i in order]}


def rollout_tree(t):
    nodes = [
        TreeNode(
            node_id=i,
            parent_id=None if p < 0 else p,
            step=StepRecord(index=0, observation="", action="", completion_token_ids=[1] * (1 + i % 3)),
        )
        for i, p in enumerate(t["parents"])
    ]
    leaves = [
        TreeLeaf(node_id=node, final_reward=r, success=r > 0, status="ok" if v else "infra_error")
        for node, r, v in t["leaves"]
    ]
    return RolloutTree(task_id="q", group_id=f"g{t['group']}", nodes=nodes, leaves=leaves)


def tree_batch(trees):
    return StepBatch.from_trees([rollout_tree(t) for t in trees])


TREE_CASES = [
    ("tree_grpo", {}, "sum"),
    ("tree_grpo", {"mode": "mean_norm"}, "sum"),
    ("tree_intra", {}, "intra"),
    ("tree_2norm", {}, "2norm"),
]
forests = st.lists(tree(), min_size=1, max_size=4)


@pytest.mark.parametrize("name, cfg, variant", TREE_CASES)
@settings(max_examples=30, deadline=None)
@given(trees=forests)
def test_tree_estimators_match_materialised_reference(name, cfg, variant, trees):
    leaf_adv = per_row.tree_leaf_advantages(trees, variant, cfg.get("mode", "mean_std_norm"))
    expected = per_row.tree_node_credit(trees, leaf_adv)
    np.testing.assert_allclose(get_estimator(name)(tree_batch(trees), cfg), expected, rtol=0, atol=1e-8)


@st.composite
def with_masked_parts(draw, trees):
    """``trees`` plus infra-failed leaves on any node, infra-failed branches under any node and
    whole infra-failed trees at any position; returns (trees, original rows' new indices)."""
    out = []
    for t in trees:
        t = {**t, "parents": list(t["parents"]), "leaves": list(t["leaves"])}
        n = len(t["parents"])
        for _ in range(draw(st.integers(0, 2))):  # a failed leaf on any node
            t["leaves"].insert(
                draw(st.integers(0, len(t["leaves"]))), (draw(st.integers(0, n - 1)), 0.0, False)
            )
        if draw(st.booleans()):  # a failed branch: new nodes under any node, ending in a failed leaf
            start = len(t["parents"])
            t["parents"] += [draw(st.integers(-1, start - 1))] + list(
                range(start, start + draw(st.integers(0, 2)))
            )
            t["leaves"].append((len(t["parents"]) - 1, draw(st.sampled_from([0.0, 1.0])), False))
        out.append((t, n))
    for extra in draw(st.lists(tree(all_masked=True), max_size=2)):
        out.insert(draw(st.integers(0, len(out))), (extra, 0))
    rows, offset = [], 0
    for t, n_original in out:
        rows += range(offset, offset + n_original)
        offset += len(t["parents"])
    return [t for t, _ in out], np.asarray(rows, dtype=np.int64)


TREE_INVARIANCE = [(name, cfg) for name, cfg, _ in TREE_CASES] + [
    ("grpo", {}),
    ("rloo", {}),
    ("empg", {"base": "tree_grpo"}),
]


@pytest.mark.parametrize("name, cfg", TREE_INVARIANCE)
@settings(max_examples=30, deadline=None)
@given(data=st.data(), trees=forests)
def test_masked_leaves_and_branches_anywhere_change_nothing(name, cfg, data, trees):
    mixed, kept = data.draw(with_masked_parts(trees))
    est = get_estimator(name)
    clean_b, mixed_b = tree_batch(trees), tree_batch(mixed)
    if name == "empg":  # EMPG reads step entropies
        clean_b = clean_b.replace(token_entropy=np.linspace(0.1, 2.0, int(clean_b.n_tokens.sum())))
        ent = np.zeros(int(mixed_b.n_tokens.sum()))
        ent[np.isin(mixed_b.token_row, kept)] = clean_b.token_entropy
        ent[~np.isin(mixed_b.token_row, kept)] = 5.0  # masked rows: extreme entropies must not matter
        mixed_b = mixed_b.replace(token_entropy=ent)
    clean, with_masked = est(clean_b, cfg), est(mixed_b, cfg)
    np.testing.assert_allclose(with_masked[kept], clean, rtol=0, atol=1e-12)
    masked_rows = np.setdiff1d(np.arange(mixed_b.n_rows), kept)
    assert np.all(with_masked[masked_rows] == 0.0)
    assert not mixed_b.valid[masked_rows].any()
