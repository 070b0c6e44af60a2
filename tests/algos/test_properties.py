"""Property tests: permutation invariance and zero-mean groups (masking: test_masking.py)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrl.algos import StepBatch, get_estimator
from agentrl.algos.gigpo import GiGPOConfig, gigpo_parts

traj_strategy = st.fixed_dictionaries(
    {
        "group": st.integers(0, 2),
        "length": st.integers(1, 4),
        "rewards": st.lists(st.sampled_from([0.0, 0.5, 1.0, 10.0]), min_size=4, max_size=4),
        "states": st.lists(st.integers(-1, 3), min_size=4, max_size=4),
        "action_valid": st.lists(st.booleans(), min_size=4, max_size=4),
        "tools": st.lists(st.integers(0, 3), min_size=4, max_size=4),
        "tokens": st.lists(st.integers(1, 3), min_size=4, max_size=4),
        "valid": st.booleans(),
        "success": st.booleans(),
        "entropy": st.sampled_from([0.2, 0.5, 1.0, 3.0]),
    }
)
batches = st.lists(traj_strategy, min_size=1, max_size=10)
STEP_ESTIMATORS = ["grpo", "rloo", "gigpo", "gtpo_turn", "tree_grpo", "tree_intra", "grpo_s", "empg"]


def build(trajs):
    rows = [(i, t, k) for i, t in enumerate(trajs) for k in range(t["length"])]
    col = lambda key: [t[key][k] for _, t, k in rows]
    n_tok = col("tokens")
    ent = np.concatenate(
        [np.linspace(0.1, 2.0, n) * t["entropy"] * (1 + k) for n, (_, t, k) in zip(n_tok, rows)]
    )
    return StepBatch.from_chains(
        traj=[i for i, _, _ in rows],
        group=[t["group"] for t in trajs],
        reward=col("rewards"),
        success=[t["success"] for t in trajs],
        valid=[t["valid"] for t in trajs],
        action_valid=col("action_valid"),
        state=col("states"),
        tool_calls=col("tools"),
        n_tokens=n_tok,
        token_entropy=ent,
    )


def row_order(trajs, perm):
    """Row indices of the original batch, listed in the permuted batch's row order."""
    starts = np.cumsum([0] + [t["length"] for t in trajs])
    return np.concatenate([np.arange(starts[p], starts[p + 1]) for p in perm])


@settings(max_examples=25, deadline=None)
@given(batches, st.randoms(use_true_random=False))
def test_permuting_trajectories_permutes_advantages(trajs, rnd):
    perm = list(range(len(trajs)))
    rnd.shuffle(perm)
    # Relabel groups too: group ids are names, not an order.
    relabel = {g: (g + 1) % 3 for g in range(3)}
    permuted = [dict(trajs[p], group=relabel[trajs[p]["group"]]) for p in perm]
    a, b = build(trajs), build(permuted)
    order = row_order(trajs, perm)
    for name in STEP_ESTIMATORS:
        np.testing.assert_allclose(
            get_estimator(name)(b), get_estimator(name)(a)[order], atol=1e-9, err_msg=name
        )
    tok_a, tok_b = get_estimator("gtpo_entropy")(a), get_estimator("gtpo_entropy")(b)
    tok_order = np.concatenate([np.flatnonzero(a.token_row == r) for r in order])
    np.testing.assert_allclose(tok_b, tok_a[tok_order], atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(batches)
def test_group_advantages_sum_to_zero(trajs):
    b = build(trajs)
    ep = b.episode_rows
    valid = b.episode_valid
    for name, kw in [("grpo", {}), ("grpo", {"mode": "mean_norm"}), ("rloo", {})]:
        adv = get_estimator(name)(b, **kw)[ep]
        for g in np.unique(b.group[ep]):
            assert abs(adv[(b.group[ep] == g) & valid].sum()) < 1e-6, name
    turn = get_estimator("gtpo_turn")(b)  # turn-weighted: zero mean over the group's valid turns
    for g in np.unique(b.group):
        assert abs(turn[(b.group == g) & b.valid].sum()) < 1e-6
    _, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm"))  # anchor groups: zero-mean even with penalties
    # (the reference "row" penalty moves only the offending row's numerator: not zero-mean by design)
    a_e, _ = gigpo_parts(b, GiGPOConfig(mode="mean_norm", invalid_penalty=0.0))
    for g in np.unique(b.group[ep]):
        assert abs(a_e[ep][(b.group[ep] == g) & valid].sum()) < 1e-6
    from agentrl.algos.anchors import exact_anchors

    anchor, _ = exact_anchors(b)
    for k in np.unique(anchor[anchor >= 0]):
        assert abs(a_s[(anchor == k) & b.valid].sum()) < 1e-6
    a_e_step, _ = gigpo_parts(b, GiGPOConfig(mode="mean_norm", episode_stats="step", invalid_penalty=0.0))
    for g in np.unique(b.group):
        assert abs(a_e_step[(b.group == g) & b.valid].sum()) < 1e-6  # step-weighted: zero over rows
