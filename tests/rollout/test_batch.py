"""RolloutBatch: the one seam. Token rows from chains and trees, advantages laid on along one
layout, and the deduplicated tree loss equal to training every root-to-leaf path."""

import dataclasses

import numpy as np
import pytest
import torch

from agentrl.algos import Pipeline
from agentrl.rollout.batch import RolloutBatch
from agentrl.train.config import PolicyLossConfig
from agentrl.train.loss import loss_weights, policy_loss, token_logprobs_and_entropy
from agentrl.train.rows import collate
from agentrl.types import RolloutTree, StepRecord, Trajectory, TreeLeaf, TreeNode


def step(i, prompt, completion, version=0):
    return StepRecord(
        index=i,
        observation="o",
        action="a",
        prompt_token_ids=prompt,
        completion_token_ids=completion,
        logprobs=[-0.1 * (k + 1) for k in range(len(completion))],
        policy_version=version,
    )


def test_a_chain_whose_contexts_extend_is_one_row():
    traj = Trajectory(
        task_id="t",
        final_reward=1.0,
        steps=[step(0, [1, 2], [3, 4]), step(1, [1, 2, 3, 4, 5], [6], version=1)],
    )
    other = Trajectory(task_id="t", final_reward=0.0, steps=[step(0, [1, 2], [7])])
    batch = RolloutBatch.from_members([traj, other])
    (row, _) = batch.sample_rows()
    assert row.input_ids == [1, 2, 3, 4, 5, 6] and row.mask == [0, 0, 1, 1, 0, 1]
    assert row.old_logp == pytest.approx([0, 0, -0.1, -0.2, 0, -0.1]) and row.policy_version == 0
    # GRPO over R = (1, 0): A = ±1/√2 on every policy token, positive part on the winner only.
    trained = batch.with_advantages(Pipeline("grpo")(batch.steps)).tokens
    a = 0.5 / (np.sqrt(0.5) + 1e-6)  # ε = 1e-6 in the std
    assert trained[0].advantage == pytest.approx([0, 0, a, a, 0, a]) and trained[0].advantage_neg == [0.0] * 6
    assert trained[1].advantage_neg == pytest.approx([0, 0, -a]) and trained[1].mask == [0, 0, 1]


def test_a_context_that_does_not_extend_starts_a_new_row():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3]), step(1, [9, 2, 3, 4], [5])])
    rows = RolloutBatch.from_members([traj]).sample_rows()
    assert [r.input_ids for r in rows] == [[1, 2, 3], [9, 2, 3, 4, 5]]
    assert [r.mask for r in rows] == [[0, 0, 1], [0, 0, 0, 0, 1]]


def test_infra_failed_episodes_get_no_loss_and_are_counted():
    ok = Trajectory(task_id="t", final_reward=1.0, steps=[step(0, [1, 2], [3])])
    failed = Trajectory(task_id="t", status="infra_error", steps=[step(0, [1, 2], [4, 5])])
    empty = Trajectory(task_id="t", status="infra_error")
    batch = RolloutBatch.from_members([ok, failed, empty])
    rows = batch.with_advantages(Pipeline("grpo")(batch.steps)).tokens
    assert rows[1].mask == [0, 0, 0, 0]
    metrics = batch.metrics(1.0)
    assert (metrics["rollout/episodes"], metrics["rollout/infra_errors"], metrics["rollout/reward"]) == (
        3,
        2,
        1.0,
    )


def small_tree():
    """Root 0 ([1,2] → [3,4]); children 1 ([…,5] → [6], R=1) and 2 ([…,7] → [8,9], R=0)."""
    nodes = [
        TreeNode(node_id=0, step=step(0, [1, 2], [3, 4])),
        TreeNode(node_id=1, parent_id=0, step=step(1, [1, 2, 3, 4, 5], [6])),
        TreeNode(node_id=2, parent_id=0, step=step(1, [1, 2, 3, 4, 7], [8, 9])),
    ]
    leaves = [TreeLeaf(node_id=1, final_reward=1.0, success=True), TreeLeaf(node_id=2, final_reward=0.0)]
    return RolloutTree(task_id="t", group_id="g", nodes=nodes, leaves=leaves)


def test_a_shared_prefix_is_trained_once_with_its_copies_and_split_credit():
    batch = RolloutBatch.from_members([small_tree()])
    rows = batch.with_advantages(Pipeline("grpo")(batch.steps)).tokens
    # Branch 1 continues the root's row; branch 2 has the shared prefix as context only.
    assert [r.input_ids for r in rows] == [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7, 8, 9]]
    assert [r.mask for r in rows] == [[0, 0, 2, 2, 0, 1], [0, 0, 0, 0, 0, 1, 1]]
    a = 0.5 / (np.sqrt(0.5) + 1e-6)  # GRPO over the two leaves (ε = 1e-6)
    # The root: W⁺ = a, W⁻ = −a over 2 copies → ±a/2 per copy (W = 0: a single sum would lose it).
    assert rows[0].advantage == pytest.approx([0, 0, a / 2, a / 2, 0, a])
    assert rows[0].advantage_neg == pytest.approx([0, 0, -a / 2, -a / 2, 0, 0])
    assert rows[1].advantage_neg == pytest.approx([0, 0, 0, 0, 0, -a, -a])
    metrics = batch.metrics(1.0)
    # 5 tokens generated; the 2 paths spelled out hold 3 + 4 = 7.
    assert (metrics["tree/nodes"], metrics["tree/leaves"], metrics["tree/tokens_saved"]) == (3, 2, 2)


def test_token_entropies_follow_the_layout_to_the_step_axis():
    batch = RolloutBatch.from_members([small_tree()])
    # Learner.token_entropies order: rows in order, positions in order → (3, 4, 6) then (8, 9).
    with_entropy = batch.with_token_entropy(np.array([0.3, 0.4, 0.6, 0.8, 0.9]))
    # StepBatch order: node 0 (3, 4), node 1 (6), node 2 (8, 9).
    assert with_entropy.steps.token_entropy.tolist() == [0.3, 0.4, 0.6, 0.8, 0.9]
    chain_then_branch = RolloutBatch.from_members([small_tree(), small_tree()])
    assert chain_then_branch.token_row.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_the_batch_layout_is_the_records_layouts_shifted_as_built_by_hand():
    chain = Trajectory(
        task_id="t",
        steps=[
            step(0, [1, 2], [3, 4], version=3),
            step(1, [1, 2, 3, 4, 5], [6], version=2),  # extends row 0
            step(2, [9, 6], [7, 8], version=4).model_copy(update={"segment": 1}),  # history rewritten
            step(3, [9, 6, 7, 8, 10], [11], version=None),  # extends row 1; no version
            step(4, [9, 6, 7, 8, 10, 11, 12], [], version=None),  # no tokens: no row
            step(5, [9, 6, 7, 8, 10, 11, 12, 13], [14], version=5),  # its parent has no row: a new one
        ],
    )
    batch = RolloutBatch.from_members([chain, small_tree()])  # the tree's rows come after the chain's
    # Flat token axis: chain steps 0, 1, 2, 3, 5, then tree nodes 0, 1, 2 (the second child of node 0).
    assert batch.token_row.tolist() == [0, 0, 0, 1, 1, 1, 2] + [3, 3, 3, 4, 4]
    assert batch.token_pos.tolist() == [2, 3, 5, 2, 3, 5, 8] + [2, 3, 5, 5, 6]
    rows = batch.sample_rows()
    assert [r.input_ids for r in rows] == [
        [1, 2, 3, 4, 5, 6],
        [9, 6, 7, 8, 10, 11],
        [9, 6, 7, 8, 10, 11, 12, 13, 14],
        [1, 2, 3, 4, 5, 6],
        [1, 2, 3, 4, 7, 8, 9],
    ]
    assert [r.mask for r in rows] == [
        [0, 0, 1, 1, 0, 1],
        [0, 0, 1, 1, 0, 1],
        [0] * 8 + [1],
        [0, 0, 1, 1, 0, 1],
        [0, 0, 0, 0, 0, 1, 1],
    ]
    logp = [0.0, 0.0, -0.1, -0.1 * 2, 0.0, -0.1]  # the steps' own values (step(): -0.1·(k+1))
    assert [r.old_logp for r in rows] == [logp, logp, [0.0] * 8 + [-0.1], logp, [0.0] * 5 + [-0.1, -0.1 * 2]]
    assert [r.policy_version for r in rows] == [2, 4, 5, 0, 0]  # the oldest version in the row
    assert batch.tokens == [dataclasses.replace(r, mask=[0] * len(r)) for r in rows]  # before advantages
    assert batch.tokens is batch.tokens  # built once


def test_a_record_s_columns_are_taken_when_asked_and_again_after_an_edit():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3])])
    assert "columns" not in traj.__dict__  # not taken yet
    taken = traj.take_columns()
    assert traj.columns is taken and taken.rows["n_tokens"].tolist() == [1]
    traj.steps.append(step(1, [1, 2, 3, 4], [5, 6]))
    assert traj.columns is taken  # kept as taken
    retaken = traj.take_columns()
    assert traj.columns is retaken and retaken.rows["n_tokens"].tolist() == [1, 2]
    tree = small_tree()
    first = tree.columns  # taken on first use (a record read back)
    assert first.rows["parent"].tolist() == [-1, 0, 0] and first.episodes["row"].tolist() == [1, 2]
    again = tree.take_columns()
    assert again is not first and tree.columns is again


def test_a_record_that_cannot_be_laid_out_fails_when_batched():
    no_logprobs = step(0, [1, 2], [3]).model_copy(update={"logprobs": []})
    no_prompt = step(0, [], [3])
    for bad, message in ((no_logprobs, "completion has no behaviour logprobs"), (no_prompt, "empty prompt")):
        traj = Trajectory(task_id="t", steps=[bad])
        assert traj.columns.rows.size == 1  # the rollout still takes its columns
        with pytest.raises(ValueError, match=f"step 0: {message}"):
            RolloutBatch.from_members([traj])


def random_tree(rng, tree_id, group="g"):
    """A tree of random tokens: a chain of 3 steps, a branch at node 0 and one at node 1."""
    vocab = 50

    def ids(n):
        return rng.integers(3, vocab, n).tolist()

    nodes, context = [], [1, 2]
    for i in range(3):  # the first chain
        completion = ids(int(rng.integers(2, 5)))
        nodes.append(
            TreeNode(node_id=i, parent_id=i - 1 if i else None, step=step(i, list(context), completion))
        )
        context = context + completion + ids(2)
    for parent in (0, 1):
        p = nodes[parent].step
        prompt = p.prompt_token_ids + p.completion_token_ids + ids(2)
        nodes.append(TreeNode(node_id=len(nodes), parent_id=parent, step=step(p.index + 1, prompt, ids(3))))
    for n in nodes:  # behaviour logprobs far from the model's, so ratios leave the clip range
        n.step.logprobs = rng.uniform(-6.0, -1.0, len(n.step.completion_token_ids)).tolist()
    leaves = [TreeLeaf(node_id=i, final_reward=float(rng.integers(0, 2))) for i in (2, 3, 4)]
    return RolloutTree(id=tree_id, task_id="t", group_id=group, nodes=nodes, leaves=leaves)


def gradient(model, rows, config):
    model.zero_grad(set_to_none=True)
    batch = collate(rows, pad_id=0)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp, entropy = token_logprobs_and_entropy(logits[:, :-1], batch.input_ids[:, 1:])
    weights = loss_weights(batch.mask, "token-mean")[:, 1:]
    ref = (0.8 * logp).detach()  # any per-token reference: the KL term is weighted by the copies
    loss, _ = policy_loss(
        logp,
        batch.old_logp[:, 1:],
        batch.advantage[:, 1:],
        weights,
        config,
        ref_logp=ref,
        entropy=entropy,
        advantages_neg=batch.advantage_neg[:, 1:],
    )
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), float(
        loss.detach()
    )


@pytest.mark.parametrize("estimator", ["tree_grpo", "tree_intra"])
def test_deduplicated_tree_gradient_equals_the_materialised_paths_gradient(estimator):
    from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer

    torch.manual_seed(0)
    model = build_tiny_model(build_tiny_tokenizer(), hidden_size=32, intermediate_size=64, num_layers=1)
    rng = np.random.default_rng(1)
    trees = [random_tree(rng, "T1"), random_tree(rng, "T2")]
    trees[0].leaves[0].final_reward, trees[0].leaves[1].final_reward = 1.0, 0.0  # not all equal
    config = PolicyLossConfig(clip_low=0.2, clip_high=0.28, dual_clip=3.0, kl_coef=0.1, entropy_coef=0.01)

    dedup = RolloutBatch.from_members(trees)
    dedup_rows = dedup.with_advantages(Pipeline(estimator)(dedup.steps)).tokens
    paths = RolloutBatch.from_members([p for t in trees for p in t.paths()])
    path_rows = paths.with_advantages(Pipeline(estimator)(paths.steps)).tokens
    assert len(path_rows) == 6 and len(dedup_rows) == 6  # one row per branch vs one per leaf
    assert sum(sum(r.mask) for r in dedup_rows) == sum(
        sum(r.mask) for r in path_rows
    )  # D, the duplicated count
    assert sum(len(r) for r in dedup_rows) == sum(len(r) for r in path_rows)  # same forward here…
    assert dedup.metrics(1.0)["tree/tokens_saved"] > 0  # …but shared prefixes are trained once

    g_dedup, loss_dedup = gradient(model, dedup_rows, config)
    g_paths, loss_paths = gradient(model, path_rows, config)
    assert loss_dedup == pytest.approx(loss_paths, rel=1e-5)
    assert torch.allclose(g_dedup, g_paths, atol=1e-6, rtol=1e-4)
    assert g_paths.abs().max() > 1e-4  # a real gradient, not two zeros


def test_chains_and_trees_mix_and_groups_carry_their_staleness():
    from agentrl.rollout.engine import Group, GroupSpec

    chain = Trajectory(task_id="t", group_id="h", final_reward=1.0, steps=[step(0, [1, 2], [3])])
    groups = [
        Group(GroupSpec(seed=1, group_id="g"), [small_tree()], staleness=2),
        Group(GroupSpec(seed=2, group_id="h"), [chain], staleness=0),
    ]
    batch = RolloutBatch.from_groups(groups)
    assert batch.groups == tuple(groups) and batch.trees
    assert batch.steps.n_episodes == 3 and len(batch.tokens) == 3  # the chain became a one-path tree
    metrics = batch.metrics(1.0)
    assert metrics["rollout/staleness"] == 2 and metrics["rollout/episodes"] == 3


async def test_the_rollout_takes_the_columns_and_a_record_read_back_gives_the_same_batch(
    policy, renderer, tmp_path
):
    from agentrl_envs.toy import MazeEnv

    from agentrl.policy import SamplingParams
    from agentrl.rollout import TokenActor, run_actor
    from agentrl.types import read_jsonl, write_jsonl

    actor = TokenActor(policy, renderer, SamplingParams(max_tokens=8, stop=("e", "a", " ")))
    played = [
        await run_actor(lambda: MazeEnv(max_invalid_actions=2), actor, seed=s, group_id="g") for s in (1, 2)
    ]
    assert all("columns" in t.__dict__ for t in played)  # taken when each episode ended
    assert sum(t.num_turns for t in played) >= 2
    write_jsonl(tmp_path / "episodes.jsonl", played)
    loaded = read_jsonl(tmp_path / "episodes.jsonl", Trajectory)
    assert loaded == played and not any("columns" in t.__dict__ for t in loaded)
    a, b = RolloutBatch.from_members(played), RolloutBatch.from_members(loaded)
    assert a.tokens == b.tokens and a.episode_status.tolist() == b.episode_status.tolist()
    for name in ("group", "traj", "parent", "reward", "action_valid", "state", "n_tokens", "episode_rows"):
        assert getattr(a.steps, name).tolist() == getattr(b.steps, name).tolist(), name
    assert a.steps.state_keys == b.steps.state_keys and a.steps.n_tokens.tolist() == [
        len(s.completion_token_ids) for t in played for s in t.steps
    ]
