"""Per-token staleness of a step's batch (agentrl.train.metrics.staleness_metrics), by hand."""

import pytest

from agentrl.rollout import Group, GroupSpec
from agentrl.train.metrics import staleness_metrics
from agentrl.types import RolloutTree, StepRecord, Trajectory, TreeLeaf, TreeNode


def step(tokens, version, token_versions=None):
    return StepRecord(index=0, observation="", action="", completion_token_ids=[1] * tokens,
                      policy_version=version, token_versions=token_versions)


def test_staleness_counts_every_policy_token_once_at_its_own_version():
    """Trained at version 5. A chain: 2 tokens of version 4, then a turn cut by an update — 1
    token of 3, 2 of 4 — and a scripted step (no version, not counted). A tree: its root (3
    tokens of 5) is shared by both paths but counted once, its leaf has 2 tokens of 2.
    Staleness per token: 1, 1 | 2, 1, 1 | 0, 0, 0 | 3, 3 → 10 tokens, sum 12."""
    chain = Trajectory(task_id="t", steps=[step(2, 4), step(3, 3, [3, 4, 4]), step(4, None)])
    tree = RolloutTree(
        task_id="t",
        nodes=[TreeNode(node_id=0, step=step(3, 5)), TreeNode(node_id=1, parent_id=0, step=step(2, 2)),
               TreeNode(node_id=2, parent_id=0, step=step(0, 5))],
        leaves=[TreeLeaf(node_id=1), TreeLeaf(node_id=2)],
    )
    groups = [Group(spec=GroupSpec(seed=0), members=[chain]), Group(spec=GroupSpec(seed=1), members=[tree])]
    out = staleness_metrics(groups, version=5)
    assert out["rollout/staleness_mean"] == pytest.approx(12 / 10)
    assert out["rollout/staleness_max"] == 3.0
    hist = {k: v for k, v in out.items() if k.startswith("rollout/staleness_hist/")}
    assert hist == pytest.approx({"rollout/staleness_hist/0": 0.3, "rollout/staleness_hist/1": 0.4,
                                  "rollout/staleness_hist/2": 0.1, "rollout/staleness_hist/3": 0.2})


def test_no_versioned_tokens_is_zero_staleness():
    scripted = Group(spec=GroupSpec(seed=0), members=[Trajectory(task_id="t", steps=[step(3, None)])])
    assert staleness_metrics([scripted], version=2) == {"rollout/staleness_mean": 0.0, "rollout/staleness_max": 0.0}
