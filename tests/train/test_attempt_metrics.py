"""rollout/failed_attempts (agentrl.train.metrics.attempt_metrics), by hand."""

from agentrl.rollout import Group, GroupSpec
from agentrl.types import RolloutTree, Trajectory


def test_failed_attempts_count_retries_that_succeeded_and_episodes_that_stayed_masked():
    from agentrl.train.metrics import attempt_metrics

    def chain(attempts, status="ok"):
        return Trajectory(task_id="t", status=status, info={"attempts": attempts})

    groups = [
        Group(GroupSpec(seed=1), [chain(1), chain(3)]),  # 0 + 2 failed before the third succeeded
        Group(GroupSpec(seed=2), [chain(2, "truncated"), chain(3, "infra_error")]),  # 1 + 3 (every attempt)
        Group(GroupSpec(seed=3), [RolloutTree(task_id="t")]),  # tree branches are not retried: none
    ]
    assert attempt_metrics(groups) == {"rollout/failed_attempts": 6.0}
    assert attempt_metrics([]) == {"rollout/failed_attempts": 0.0}
