"""Tree-GRPO: reference §4.5 worked example, variants, edge cases, and the deduplicated credit
being exactly the materialised (one sequence per root-to-leaf path) training signal."""

import numpy as np
import pytest
import torch

from agentrl.algos import StepBatch, get_estimator, node_credit
from agentrl.algos.tree_grpo import TreeGRPOConfig, tree_leaf_advantages
from agentrl.types import RolloutTree, StepRecord, TreeLeaf, TreeNode

tree_grpo = get_estimator("tree_grpo")


def make_tree(edges, leaves, group="p", tokens=None, status=None):
    """edges: list of parent ids (None = root) for nodes 0..n-1; leaves: {node: reward}."""
    tokens = tokens or {}
    nodes = [
        TreeNode(
            node_id=i,
            parent_id=p,
            step=StepRecord(
                index=0, observation="", action=f"n{i}", completion_token_ids=list(tokens.get(i, [1]))
            ),
        )
        for i, p in enumerate(edges)
    ]
    status = status or {}
    return RolloutTree(
        task_id="q",
        group_id=group,
        nodes=nodes,
        leaves=[
            TreeLeaf(node_id=n, final_reward=r, success=r > 0, status=status.get(n, "ok"))
            for n, r in leaves.items()
        ],
    )


def reference_trees():
    # T1: s1 → s2 → s3 (ℓ1, R=1); s1 → s4 (ℓ2, R=0); root → s5 → s6 (ℓ3, R=1)
    t1 = make_tree([None, 0, 1, 0, None, 4], {2: 1.0, 3: 0.0, 5: 1.0})
    # T2: three leaves ℓ4, ℓ5, ℓ6 with R = 0, 0, 1
    t2 = make_tree([None, 0, 0, None], {1: 0.0, 2: 0.0, 3: 1.0})
    return [t1, t2]


def test_reference_example_leaf_advantages_and_shared_node():
    b = StepBatch.from_trees(reference_trees())
    leaf_adv = tree_leaf_advantages(b, TreeGRPOConfig())
    np.testing.assert_allclose(leaf_adv, [1.4903, -2.0676, 1.4903, -1.4903, -1.4903, 2.0676], atol=1e-4)
    credit = node_credit(b, leaf_adv)
    s1 = 0
    assert credit.w[s1] == pytest.approx(-0.5773, abs=1e-4)
    assert credit.w_pos[s1] == pytest.approx(1.4903, abs=1e-4)
    assert credit.w_neg[s1] == pytest.approx(-2.0676, abs=1e-4)
    assert credit.n_desc[s1] == 2
    np.testing.assert_allclose(tree_grpo(b), credit.w)


def test_reference_example_mean_norm():
    b = StepBatch.from_trees(reference_trees())
    leaf_adv = tree_leaf_advantages(b, TreeGRPOConfig(mode="mean_norm"))
    np.testing.assert_allclose(leaf_adv, [0.8333, -1.1667, 0.8333, -0.8333, -0.8333, 1.1667], atol=1e-4)
    assert tree_grpo(b, mode="mean_norm")[0] == pytest.approx(-0.3333, abs=1e-4)


def test_variants_by_hand():
    b = StepBatch.from_trees(reference_trees())
    ep = b.episode_rows
    # intra only: T1 {1, 0, 1} → (+0.5774, −1.1547, +0.5774); T2 {0, 0, 1} → (−0.5774, −0.5774, +1.1547)
    np.testing.assert_allclose(
        get_estimator("tree_intra")(b)[ep], [0.5774, -1.1547, 0.5774, -0.5774, -0.5774, 1.1547], atol=1e-4
    )
    # 2norm: prompt z = ±0.9129, then within each tree: T1 {+.9129, −.9129, +.9129} is z-scored again.
    # A z-score is affine-invariant, so this equals the intra term (up to ε) ...
    np.testing.assert_allclose(
        get_estimator("tree_2norm")(b)[ep], [0.5774, -1.1547, 0.5774, -0.5774, -0.5774, 1.1547], atol=1e-4
    )
    # ... except for singleton trees under the reference's raw rule: a lone leaf keeps its prompt z-score.
    lone = StepBatch.from_trees([make_tree([None], {0: 1.0}), make_tree([None], {0: 0.0})])
    np.testing.assert_allclose(
        get_estimator("tree_2norm")(lone, singleton="raw"), [0.7071, -0.7071], atol=1e-4
    )
    np.testing.assert_allclose(get_estimator("tree_intra")(lone, singleton="raw"), [1.0, 0.0], atol=1e-4)


def test_dedup_credit_equals_sum_over_materialised_paths():
    trees = reference_trees()
    dedup = tree_grpo(StepBatch.from_trees(trees))
    paths = [p for t in trees for p in t.paths()]
    materialised = tree_grpo(StepBatch.from_trajectories(paths))
    # Sum each node's copies over the paths that contain it.
    total = np.zeros_like(dedup)
    offset_nodes, row = 0, 0
    for tree in trees:
        position = {n.node_id: offset_nodes + i for i, n in enumerate(tree.nodes)}
        for leaf in tree.leaves:
            for node in tree.path_to(leaf.node_id):
                total[position[node.node_id]] += materialised[row]
                row += 1
        offset_nodes += len(tree.nodes)
    np.testing.assert_allclose(dedup, total, atol=1e-12)


def _surrogate_losses(trees, old_shift):
    """PPO-clip loss computed (a) on every materialised path and (b) once per node with W⁺/W⁻."""
    torch.manual_seed(0)
    batch = StepBatch.from_trees(trees)
    leaf_adv = tree_leaf_advantages(batch, TreeGRPOConfig())
    credit = node_credit(batch, leaf_adv)
    n_tok = batch.n_tokens
    feats = torch.randn(int(n_tok.sum()), 4, dtype=torch.float64)
    ids = torch.randint(0, 5, (int(n_tok.sum()),))
    weight = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(feats @ weight, -1).gather(1, ids[:, None]).squeeze(1)
    old = logp.detach() + torch.as_tensor(old_shift(len(ids)), dtype=torch.float64)
    ratio = torch.exp(logp - old)
    clipped = ratio.clamp(0.8, 1.2)
    starts = np.r_[0, np.cumsum(n_tok)]
    token_slice = [slice(starts[r], starts[r + 1]) for r in range(batch.n_rows)]

    # (a) materialised: each leaf's path, every token with A_ℓ; denominator = duplicated token count
    parts, denom = [], 0
    for e, leaf_row in enumerate(batch.episode_rows):
        a = float(leaf_adv[e])
        r = leaf_row
        while r >= 0:
            sl = token_slice[r]
            parts.append(-torch.minimum(ratio[sl] * a, clipped[sl] * a).sum())
            denom += n_tok[r]
            r = batch.parent[r]
    loss_paths = torch.stack(parts).sum() / denom
    # (b) deduplicated: each node once, W⁺·min(ρ, clip ρ) + W⁻·max(ρ, clip ρ)
    row_of_token = torch.as_tensor(batch.token_row)
    w_pos = torch.as_tensor(credit.w_pos)[row_of_token]
    w_neg = torch.as_tensor(credit.w_neg)[row_of_token]
    dedup_denom = int((credit.n_desc * n_tok).sum())
    loss_dedup = (
        -(w_pos * torch.minimum(ratio, clipped) + w_neg * torch.maximum(ratio, clipped)).sum() / dedup_denom
    )
    # (c) the plain sum W (exact while the ratio stays inside the clip range)
    loss_plain = -(torch.as_tensor(credit.w)[row_of_token] * ratio).sum() / dedup_denom
    assert dedup_denom == denom
    grads = [
        torch.autograd.grad(x, weight, retain_graph=True)[0] for x in (loss_paths, loss_dedup, loss_plain)
    ]
    outside = float(((ratio < 0.8) | (ratio > 1.2)).double().mean())
    return (loss_paths, loss_dedup, loss_plain), grads, outside


def _tree_with_tokens():
    """The reference trees with 1..6 policy tokens per node."""
    tok = {i: [1] * (i + 1) for i in range(6)}
    return [
        make_tree([None, 0, 1, 0, None, 4], {2: 1.0, 3: 0.0, 5: 1.0}, tokens=tok),
        make_tree([None, 0, 0, None], {1: 0.0, 2: 0.0, 3: 1.0}, tokens=tok),
    ]


def test_dedup_gradient_equals_materialised_on_policy():
    (paths, dedup, plain), (g_paths, g_dedup, g_plain), _ = _surrogate_losses(
        _tree_with_tokens(), lambda n: np.zeros(n)
    )
    assert paths.item() == pytest.approx(dedup.item()) == pytest.approx(plain.item())
    torch.testing.assert_close(g_paths, g_dedup)
    torch.testing.assert_close(g_paths, g_plain)


def test_dedup_gradient_equals_materialised_outside_clip_range():
    rng = np.random.default_rng(1)
    (paths, dedup, _), (g_paths, g_dedup, _), outside = _surrogate_losses(
        _tree_with_tokens(), lambda n: rng.normal(0, 0.5, n)
    )
    assert outside > 0.3  # many tokens really are clipped
    assert paths.item() == pytest.approx(dedup.item())
    torch.testing.assert_close(g_paths, g_dedup)


def test_one_node_trees_and_singletons():
    # Two one-node trees of one prompt: intra terms are singletons (0), inter is ±0.7071.
    b = StepBatch.from_trees([make_tree([None], {0: 1.0}), make_tree([None], {0: 0.0})])
    np.testing.assert_allclose(tree_grpo(b), [0.7071, -0.7071], atol=1e-4)
    # reference rule: a singleton tree gives A_intra = R (mean 0, std 1)
    np.testing.assert_allclose(tree_grpo(b, singleton="raw"), [1.7071, -0.7071], atol=1e-4)
    # a lone tree with a lone leaf: no signal at all
    assert tree_grpo(StepBatch.from_trees([make_tree([None], {0: 1.0})])).tolist() == [0.0]


def test_masked_leaf_is_removed_and_its_branch_gets_zero():
    # T1 as in the reference but ℓ3 (node 5) failed for infrastructure reasons.
    t1 = make_tree([None, 0, 1, 0, None, 4], {2: 1.0, 3: 0.0, 5: 1.0}, status={5: "infra_error"})
    t2 = make_tree([None, 0, 0, None], {1: 0.0, 2: 0.0, 3: 1.0})
    b = StepBatch.from_trees([t1, t2])
    adv = tree_grpo(b)
    assert adv[4] == 0.0 and adv[5] == 0.0 and not b.valid[4] and not b.valid[5]
    # remaining leaves: prompt {1, 0, 0, 0, 1}, T1 {1, 0}, T2 {0, 0, 1}
    same = tree_grpo(StepBatch.from_trees([make_tree([None, 0, 1, 0], {2: 1.0, 3: 0.0}), t2]))
    np.testing.assert_allclose(adv[:4], same[:4])
    np.testing.assert_allclose(adv[6:], same[4:])


def test_all_equal_leaves_give_zero():
    b = StepBatch.from_trees([make_tree([None, 0, 0], {1: 1.0, 2: 1.0}), make_tree([None], {0: 1.0})])
    assert np.all(tree_grpo(b) == 0.0)
