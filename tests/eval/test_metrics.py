import pytest

from agentrl.eval.metrics import (
    compute_metrics,
    paired_difference,
    pass_at_k,
    per_task_table,
    report_ks,
    wilson_interval,
)
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


def test_pass_at_k_is_reported_for_the_k_the_run_used():
    assert report_ks(1) == (1,)
    assert report_ks(3) == (1, 3)
    assert report_ks(5) == (1, 5)
    assert report_ks(12) == (1, 5, 10, 12)


def test_paired_difference_by_task_with_a_bootstrap_interval():
    # Task t_i: run A succeeds on 2 of 2 samples, run B on 1 of 2 -> d = 0.5 on every task: no spread.
    a = [traj(f"t{i}", True) for i in range(8) for _ in range(2)]
    b = [traj(f"t{i}", s) for i in range(8) for s in (True, False)]
    cmp = paired_difference(a, b)
    assert cmp.tasks == [f"t{i}" for i in range(8)] and cmp.mean_difference == pytest.approx(0.5)
    assert cmp.ci == pytest.approx((0.5, 0.5))
    # d = +1 on 10 tasks, -1 on 10: mean 0, sd 1, so the bootstrap mean has sd 1/sqrt(20) = 0.2236 and
    # the 95% interval is about 0 +- 1.96 * 0.2236 = +-0.438.
    a = [traj(f"t{i}", i < 10) for i in range(20)] + [traj("only-a", True), traj("gone", False, status="infra_error")]
    b = [traj(f"t{i}", i >= 10) for i in range(20)] + [traj("gone", True)]
    cmp = paired_difference(a, b)
    assert cmp.mean_difference == 0.0 and len(cmp.tasks) == 20
    assert cmp.ci[0] == pytest.approx(-0.438, abs=0.05) and cmp.ci[1] == pytest.approx(0.438, abs=0.05)
    assert (cmp.only_in_a, cmp.only_in_b) == (1, 1)  # "gone" has no scored episode in A
