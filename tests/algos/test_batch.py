"""StepBatch construction from records and arrays, tree walks, token expansion."""

import dataclasses

import numpy as np
import pytest

from agentrl.algos import StepBatch, expand_to_tokens, get_estimator
from agentrl.types import RolloutTree, StepRecord, Trajectory, TreeLeaf, TreeNode, read_jsonl, write_jsonl


def step(i, reward=0.0, state=None, valid=True, tools=0, tokens=(), action="a"):
    return StepRecord(
        index=i,
        observation="o",
        action=action,
        reward=reward,
        state_key=state,
        valid_action=valid,
        tool_calls=tools,
        completion_token_ids=list(tokens),
    )


def test_from_trajectories_columns():
    t1 = Trajectory(
        task_id="q1",
        group_id="g",
        steps=[step(0, 0, "s0", tokens=[1, 2]), step(1, 1, "s1", False, 2, [3])],
        final_reward=1.0,
        success=True,
    )
    t2 = Trajectory(task_id="q1", group_id="g", steps=[step(0, 0, "s0", tools=1)], final_reward=0.0)
    t3 = Trajectory(task_id="q2", steps=[step(0)], status="infra_error")
    empty_infra = Trajectory(task_id="q2", status="infra_error")
    b = StepBatch.from_trajectories([t1, t2, empty_infra, t3], keep_text=True)
    assert b.n_rows == 4
    assert b.group.tolist() == [0, 0, 0, 1]  # t3 has no group_id: grouped by task
    assert b.group_names == ("g", "q2") and b.task_names == ("q1", "q2")
    assert b.traj.tolist() == [0, 0, 1, 2] and b.traj_names == (t1.id, t2.id, t3.id)
    assert b.parent.tolist() == [-1, 0, -1, -1] and b.step.tolist() == [0, 1, 0, 0]
    assert b.leaf.tolist() == [False, True, True, True]
    assert b.episode_rows.tolist() == [1, 2, 3]
    assert b.episode_reward.tolist() == [1.0, 0.0, 0.0] and b.episode_success.tolist() == [True, False, False]
    assert b.episode_valid.tolist() == [True, True, False] and b.valid.tolist() == [True, True, True, False]
    assert b.action_valid.tolist() == [True, False, True, True]
    assert b.state.tolist() == [0, 1, 0, -1] and b.state_keys == ("s0", "s1")
    assert b.tool_calls.tolist() == [0, 2, 1, 0] and b.n_tokens.tolist() == [2, 1, 0, 0]
    assert b.episode_tool_calls.tolist() == [2, 1, 0]
    assert b.is_chain and list(b.action_text) == ["a"] * 4


def test_learnable_trajectory_without_steps_is_an_error():
    with pytest.raises(ValueError, match="no steps"):
        StepBatch.from_trajectories([Trajectory(task_id="q")])


def test_bad_columns_fail_loudly():
    with pytest.raises(ValueError, match="per row"):
        StepBatch.from_chains(traj=[0, 0], group=[0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        StepBatch.from_chains(traj=[0], group=[0], final_reward=[np.nan])
    with pytest.raises(ValueError, match="token_entropy"):
        StepBatch.from_chains(traj=[0], group=[0], n_tokens=[2], token_entropy=np.ones(3))
    b = StepBatch.from_chains(traj=[0, 0], group=[0, 0])
    with pytest.raises(ValueError, match="earlier row"):
        b.replace(parent=np.array([-1, 1]))


def tree_example() -> RolloutTree:
    """root(0) → 1 → 2 (leaf A, R=1); 1 → 3 (leaf B, R=0); root → 4 (leaf C, infra error)."""
    nodes = [
        TreeNode(node_id=0, step=step(0, tokens=[1, 1])),
        TreeNode(node_id=1, parent_id=0, step=step(1, tools=1, tokens=[1])),
        TreeNode(node_id=2, parent_id=1, step=step(2, tools=2, tokens=[1, 1, 1])),
        TreeNode(node_id=3, parent_id=1, step=step(2, valid=False)),
        TreeNode(node_id=4, parent_id=0, step=step(1, tools=5)),
    ]
    leaves = [
        TreeLeaf(node_id=2, final_reward=1.0, success=True),
        TreeLeaf(node_id=3, final_reward=0.0),
        TreeLeaf(node_id=4, final_reward=1.0, status="infra_error"),
    ]
    return RolloutTree(task_id="q", nodes=nodes, leaves=leaves)


def test_from_trees_dedups_nodes_and_walks_paths():
    b = StepBatch.from_trees([tree_example()])
    assert b.n_rows == 5 and not b.is_chain
    assert b.parent.tolist() == [-1, 0, 1, 1, 0] and b.step.tolist() == [0, 1, 2, 2, 1]
    assert b.episode_rows.tolist() == [2, 3, 4]
    assert b.episode_tool_calls.tolist() == [3, 1, 5]
    assert b.valid.tolist() == [True, True, True, True, False]  # node 4 has only the infra leaf below
    # credit = sum of the episode values below each node
    assert b.credit(np.array([10.0, 1.0, 100.0])).tolist() == [111.0, 11.0, 10.0, 1.0, 100.0]
    assert b.path_sum(np.array([1, 2, 3, 4, 5])).tolist() == [1, 3, 6, 7, 6]


def inner_leaf_tree(extra_leaves) -> RolloutTree:
    """root(0) → 1 → 2 (leaf, R=1); 1 → 3 (leaf, R=0); root → 4 (leaf, R=1); plus ``extra_leaves``."""
    nodes = [
        TreeNode(node_id=0, step=step(0, tokens=[1])),
        TreeNode(node_id=1, parent_id=0, step=step(1, tokens=[1])),
        TreeNode(node_id=2, parent_id=1, step=step(2, tokens=[1])),
        TreeNode(node_id=3, parent_id=1, step=step(2, tokens=[1])),
        TreeNode(node_id=4, parent_id=0, step=step(1, tokens=[1])),
    ]
    leaves = [
        TreeLeaf(node_id=2, final_reward=1.0, success=True),
        TreeLeaf(node_id=3, final_reward=0.0),
        TreeLeaf(node_id=4, final_reward=1.0, success=True),
    ]
    return RolloutTree(task_id="q", group_id="g", nodes=nodes, leaves=leaves + list(extra_leaves))


@pytest.mark.parametrize("name", ["grpo", "rloo", "tree_grpo", "tree_intra", "tree_2norm"])
def test_infra_leaf_on_an_inner_node_enters_no_statistic(name):
    # A branch from node 1 failed before its first step: its leaf sits on node 1, which stays
    # learnable (valid leaves lie below it), but the failed episode must not count as a reward 0.
    est = get_estimator(name)
    clean = [inner_leaf_tree([]), inner_leaf_tree([])]
    failed = [inner_leaf_tree([TreeLeaf(node_id=1, status="infra_error")]), inner_leaf_tree([])]
    b = StepBatch.from_trees(failed)
    assert b.valid.all()  # every node still has a valid leaf below it
    np.testing.assert_array_equal(est(b), est(StepBatch.from_trees(clean)))


def test_two_leaves_on_one_node_are_two_episodes():
    # Two branches from node 1 both ended before their first step (context full): two episodes
    # root → 1, each scored 0 — exactly what training the materialised paths would see.
    ended = TreeLeaf(node_id=1, final_reward=0.0, status="truncated", truncation="context_overflow")
    trees = [
        inner_leaf_tree([ended, ended]),
        inner_leaf_tree([TreeLeaf(node_id=1, status="infra_error")] * 2),
    ]
    b = StepBatch.from_trees(trees)
    assert b.n_episodes == 10 and b.episode_rows.tolist() == [1, 1, 2, 3, 4, 6, 6, 7, 8, 9]
    assert b.episode_valid.tolist() == [True, True, True, True, True, False, False, True, True, True]
    paths = StepBatch.from_trajectories([p for t in trees for p in t.paths()])
    for name in ("grpo", "rloo", "tree_grpo"):
        est = get_estimator(name)
        dedup, materialised = est(b), est(paths)
        # each node's advantage = the sum over the materialised copies of it
        copies = np.zeros(b.n_rows)
        row = 0
        for t, tree in enumerate(trees):
            for leaf in tree.leaves:
                for node in tree.path_to(leaf.node_id):
                    copies[5 * t + node.node_id] += materialised[row]
                    row += 1
        np.testing.assert_allclose(dedup, copies, atol=1e-12, err_msg=name)


def test_paths_keep_their_tree():
    tree = tree_example()
    b = StepBatch.from_trajectories(tree.paths())
    assert b.tree.tolist() == [0] * 8 and b.traj.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert b.valid.tolist() == [True] * 6 + [False] * 2


def test_expand_to_tokens_flat_and_padded():
    assert expand_to_tokens(np.array([1.0, -2.0, 3.0]), np.array([2, 0, 1])).tolist() == [1, 1, 3]
    padded = expand_to_tokens(np.array([1.0, -2.0]), np.array([1, 3]), pad_to=4)
    assert padded.tolist() == [[1, 0, 0, 0], [-2, -2, -2, 0]]
    with pytest.raises(ValueError, match="pad_to"):
        expand_to_tokens(np.array([1.0]), np.array([5]), pad_to=4)


def test_step_entropy_is_the_token_mean():
    b = StepBatch.from_chains(traj=[0, 0, 1], group=[0, 0], n_tokens=[2, 0, 1], token_entropy=[1.0, 3.0, 0.5])
    assert b.step_entropy.tolist() == [2.0, 0.0, 0.5]


def test_discounted_returns_both_layouts_match_the_recursion():
    from agentrl.algos.stats import discounted_returns

    rng = np.random.default_rng(3)
    for lengths in ([3, 1, 4], [1] * 10 + [30]):  # compact (dense grid) and skewed (per-level) layouts
        traj = np.repeat(np.arange(len(lengths)), lengths)
        pos = np.concatenate([np.arange(n) for n in lengths])
        r = rng.normal(size=traj.size)
        expected = np.zeros_like(r)
        for i in range(r.size - 1, -1, -1):
            nxt = expected[i + 1] if i + 1 < r.size and traj[i + 1] == traj[i] else 0.0
            expected[i] = r[i] + 0.9 * nxt
        np.testing.assert_allclose(discounted_returns(r, traj, pos, 0.9), expected, atol=1e-12)


def test_replace_checks_new_values_and_keeps_structure():
    b = StepBatch.from_chains(traj=[0, 0, 1], group=[0, 0], n_tokens=[1, 1, 1], token_entropy=[1.0, 2.0, 3.0])
    levels = b.depth_levels
    shaped = b.replace(reward=np.array([1.0, 2.0, 3.0]))
    assert shaped.depth_levels is levels and shaped.reward.dtype == np.float64
    assert b.reward.tolist() == [0.0, 0.0, 0.0]  # the original is untouched
    with pytest.raises(ValueError, match="NaN"):
        b.replace(episode_reward=np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="one entry per episode"):
        b.replace(episode_valid=np.array([True]))
    with pytest.raises(ValueError, match="constant along each trajectory"):
        StepBatch.from_chains(traj=[0, 0], group=[0, 0], final_reward=[1.0, 0.0])
    assert b.replace(token_entropy=np.array([4.0, 4.0, 4.0])).step_entropy.tolist() == [4.0, 4.0, 4.0]


# ------------------------------------------------------------------ the batch equals its records
def reference(records) -> dict:
    """Every StepBatch field built by hand from the records: one row per step (chain) or node
    (tree) in record order, ids dense in first-seen order, episodes by row (stable)."""
    out = {k: [] for k in ("group", "traj", "tree", "node", "parent", "step", "reward", "action_valid")}
    out |= {k: [] for k in ("state", "tool_calls", "n_tokens", "task", "episode_rows", "episode_reward")}
    out |= {"episode_success": [], "episode_valid": [], "traj_names": []}
    names = {"group": [], "task": [], "tree": [], "state": []}

    def dense(kind, key):
        if key not in names[kind]:
            names[kind].append(key)
        return names[kind].index(key)

    for r in records:
        if isinstance(r, Trajectory):
            nodes = [(i, i - 1 if i else None, s) for i, s in enumerate(r.steps)]
            ends = [(len(r.steps) - 1, r)] if r.steps else []
            tree_key = r.info.get("tree_id", r.id)
        else:
            nodes = [(n.node_id, n.parent_id, n.step) for n in r.nodes]
            ends = [(leaf.node_id, leaf) for leaf in r.leaves]
            tree_key = r.id
        if not nodes:
            continue
        base = len(out["node"])
        row_of = {node_id: base + k for k, (node_id, _, _) in enumerate(nodes)}
        for node_id, parent_id, s in nodes:
            parent = -1 if parent_id is None else row_of[parent_id]
            out["group"].append(dense("group", r.group_id or r.task_id))
            out["task"].append(dense("task", r.task_id))
            out["tree"].append(dense("tree", tree_key))
            out["traj"].append(len(out["traj_names"]))
            out["node"].append(node_id)
            out["parent"].append(parent)
            out["step"].append(0 if parent < 0 else out["step"][parent] + 1)
            out["reward"].append(s.reward)
            out["action_valid"].append(s.valid_action)
            out["state"].append(-1 if s.state_key is None else dense("state", s.state_key))
            out["tool_calls"].append(s.tool_calls)
            out["n_tokens"].append(len(s.completion_token_ids))
        for node_id, e in sorted(ends, key=lambda end: row_of[end[0]]):  # sorted() is stable
            out["episode_rows"].append(row_of[node_id])
            out["episode_reward"].append(e.final_reward)
            out["episode_success"].append(e.success)
            out["episode_valid"].append(e.status != "infra_error")
        out["traj_names"].append(r.id)
    out |= {"group_names": tuple(names["group"]), "task_names": tuple(names["task"])}
    out["state_keys"] = tuple(names["state"])
    out["traj_names"] = tuple(out["traj_names"])
    return out


def assert_batch_is(batch: StepBatch, expected: dict) -> None:
    for name, want in expected.items():
        got = getattr(batch, name)
        if isinstance(got, np.ndarray):
            assert got.tolist() == list(want), name
        else:
            assert got == want, name


def mixed_records():
    """Chains (states, masks, empty group ids, an infra error with steps, one without, a
    materialised path) and trees (scattered node ids, inner leaves, two leaves on one node)."""
    ok = Trajectory(
        task_id="q1",
        group_id="g",
        steps=[
            step(0, 0.5, "s0", tokens=[1, 2]),
            step(1, 1.0, "s1", False, 2, [3]),
            step(2, 0, None, tools=1),
        ],
        final_reward=1.5,
        success=True,
    )
    cut = Trajectory(task_id="q1", group_id="g", steps=[step(0, 0, "s1", tokens=[4])], status="truncated")
    infra = Trajectory(task_id="q2", steps=[step(0, 0, "s0"), step(1, 0, "x")], status="infra_error")
    empty = Trajectory(task_id="q2", status="infra_error")
    tree = RolloutTree(
        id="T",
        task_id="q1",
        group_id="g",
        nodes=[
            TreeNode(node_id=7, step=step(0, 0, "s0", tokens=[1])),
            TreeNode(node_id=3, parent_id=7, step=step(1, 1, "s2", tools=3, tokens=[1, 1])),
            TreeNode(node_id=9, parent_id=7, step=step(1, 0, "s1", valid=False)),
            TreeNode(node_id=4, parent_id=3, step=step(2, 2, None, tokens=[5, 5, 5])),
        ],
        leaves=[
            TreeLeaf(node_id=4, final_reward=3.0, success=True),
            TreeLeaf(node_id=3, final_reward=1.0, status="truncated"),
            TreeLeaf(node_id=9, status="infra_error"),
            TreeLeaf(node_id=3, final_reward=0.5),  # a second episode ending on node 3
        ],
    )
    path = tree.paths()[0]  # keeps its tree: info["tree_id"] == "T"
    return [ok, cut, infra, empty, tree, path]


def test_the_batch_is_its_records_field_by_field():
    records = mixed_records()
    chains = [r for r in records if isinstance(r, Trajectory)]
    trees = [r for r in records if isinstance(r, RolloutTree)]
    for batch, built_from in (
        (StepBatch.from_trajectories(chains), chains),
        (StepBatch.from_trees(trees), trees),
        (StepBatch.from_trees(records), records),  # a trajectory among trees is a one-path tree
    ):
        assert_batch_is(batch, reference(built_from))
    # The reference itself, spot-checked by hand on the mixed batch: the tree's rows are 6..9
    # (nodes 7, 3, 9, 4), its episodes end on rows 7, 7, 8, 9 (node 3 twice, in leaf order).
    b = StepBatch.from_trees(records)
    assert b.node[6:10].tolist() == [7, 3, 9, 4] and b.parent[6:10].tolist() == [-1, 6, 6, 7]
    assert b.episode_rows.tolist() == [2, 3, 5, 7, 7, 8, 9, 12]
    assert b.episode_reward[3:7].tolist() == [1.0, 0.5, 0.0, 3.0]
    assert b.episode_valid.tolist() == [True, True, False, True, True, False, True, True]
    assert b.tree.tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3]  # the path shares tree T
    assert b.state_keys == ("s0", "s1", "x", "s2") and b.state[:6].tolist() == [0, 1, -1, 1, 0, 2]
    assert b.traj_names[-2:] == ("T", "T:4") and b.n_rows == 13  # the empty infra error adds no row


def test_a_record_read_back_gives_the_same_batch(tmp_path):
    records = mixed_records()
    before = StepBatch.from_trees(records, keep_text=True)  # columns taken on these records
    write_jsonl(tmp_path / "chains.jsonl", [r for r in records if r.kind == "trajectory"])
    write_jsonl(tmp_path / "trees.jsonl", [r for r in records if r.kind == "tree"])
    chains, trees = (
        read_jsonl(tmp_path / "chains.jsonl", Trajectory),
        read_jsonl(tmp_path / "trees.jsonl", RolloutTree),
    )
    loaded = chains[:4] + trees + chains[4:]  # the order of mixed_records()
    assert all("columns" not in r.__dict__ for r in loaded) and loaded == records
    after = StepBatch.from_trees(loaded, keep_text=True)
    assert_batch_is(after, reference(records))
    for f in dataclasses.fields(StepBatch):
        a, b = getattr(before, f.name), getattr(after, f.name)
        assert (a.tolist() == b.tolist()) if isinstance(a, np.ndarray) else (a == b), f.name
