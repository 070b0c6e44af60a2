import pytest

from agentrl.eval.metrics import compute_metrics, pass_at_k, per_task_table, wilson_interval
from agentrl.types import StepRecord, Trajectory


def traj(task, success, tools=0, turns=1, status="ok", invalid=0):
    steps = [
        StepRecord(index=i, observation="o", action="a", tool_calls=tools if i == 0 else 0,
                   valid_action=i >= invalid, completion_token_ids=[1, 2, 3])
        for i in range(turns)
    ]
    return Trajectory(task_id=task, steps=steps, success=success, final_reward=float(success), status=status)


def test_pass_at_k_matches_the_combinatorial_formula():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # n - c = 2 < k
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="needs at least 3 samples"):
        pass_at_k(2, 1, 3)


def test_wilson_interval_against_published_values():
    # 2 successes in 4: the textbook 95% Wilson interval is [0.150, 0.850].
    assert wilson_interval(2, 4) == pytest.approx((0.1500, 0.8500), abs=1e-4)
    # 0 of 10: [0, 0.2775].
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_metrics_leave_infra_errors_out_of_every_score():
    runs = [
        traj("a", True, tools=2, turns=2),
        traj("a", False, tools=1, turns=3, invalid=1),
        traj("b", True, tools=1, turns=1),
        traj("b", False, status="infra_error", tools=9, turns=4),
    ]
    m = compute_metrics(runs, ks=(1, 2))
    assert (m.episodes, m.scored_episodes, m.infra_errors, m.tasks) == (4, 3, 1, 2)
    assert m.success_rate == pytest.approx(2 / 3)
    assert m.mean_turns == pytest.approx(2.0)
    assert m.mean_tool_calls == pytest.approx(4 / 3)
    assert m.tool_productivity == pytest.approx(2 / 4)
    assert m.invalid_action_rate == pytest.approx(1 / 6)
    assert m.mean_completion_tokens == pytest.approx(3 * 6 / 3)
    # pass@1: task a 0.5, task b 1.0 -> 0.75; pass@2 only task a is eligible (n=2, c=1) -> 1.0
    assert m.pass_at_k == {1: pytest.approx(0.75), 2: pytest.approx(1.0)}
    rows = {r["task_id"]: r for r in per_task_table(runs)}
    assert rows["b"]["samples"] == 1 and rows["b"]["infra_errors"] == 1
