"""Evaluation metrics over recorded trajectories.

Infra failures (``status == "infra_error"``) are counted and reported, and left out of every
score: a sandbox that died says nothing about the agent.

* success rate with a 95% Wilson score interval (good at small n and near 0 or 1);
* pass@k with the unbiased estimator of Chen et al. (2021), per task with n samples of which c
  succeeded: ``pass@k = 1 - C(n-c, k) / C(n, k)``, averaged over tasks that have n >= k;
* tool productivity: successes per tool call (Wang et al., OTC), the efficiency OTC rewards;
* invalid-action rate: invalid steps / all steps;
* two runs compared task by task: the per-task success-rate differences ``d_t = a_t - b_t`` over
  the tasks both runs scored, their mean, and a 95% paired bootstrap interval on that mean
  (resample tasks with replacement, percentile interval; Efron & Tibshirani 1993). Pairing by
  task removes the task-difficulty variance a comparison of two independent rates would carry.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from agentrl.types import Trajectory


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``n`` samples, ``c`` correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def report_ks(samples_per_task: int) -> tuple[int, ...]:
    """The k of pass@k worth reporting for a run with ``samples_per_task`` samples: 1, 5, 10 where
    there are enough samples, and always the k the run used."""
    return tuple(sorted({k for k in (1, 5, 10) if k <= samples_per_task} | {samples_per_task}))


class Metrics(BaseModel):
    episodes: int
    scored_episodes: int
    infra_errors: int
    tasks: int
    success_rate: float
    success_ci: tuple[float, float]
    mean_reward: float
    pass_at_k: dict[int, float]
    mean_turns: float
    mean_tool_calls: float
    tool_productivity: float
    mean_completion_tokens: float
    invalid_action_rate: float
    truncated_rate: float


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def compute_metrics(trajectories: Sequence[Trajectory], ks: Sequence[int] = (1,)) -> Metrics:
    """Summary metrics; pass@k for each k that at least one task has enough samples for."""
    scored = [t for t in trajectories if t.learnable]
    successes = sum(t.success for t in scored)
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in scored:
        by_task[t.task_id].append(t)
    pass_k = {}
    for k in ks:
        eligible = [runs for runs in by_task.values() if len(runs) >= k]
        if eligible:
            pass_k[k] = _mean([pass_at_k(len(runs), sum(r.success for r in runs), k) for runs in eligible])
    steps = [s for t in scored for s in t.steps]
    tool_calls = sum(t.total_tool_calls for t in scored)
    return Metrics(
        episodes=len(trajectories),
        scored_episodes=len(scored),
        infra_errors=len(trajectories) - len(scored),
        tasks=len(by_task),
        success_rate=successes / len(scored) if scored else 0.0,
        success_ci=wilson_interval(successes, len(scored)),
        mean_reward=_mean([t.final_reward for t in scored]),
        pass_at_k=pass_k,
        mean_turns=_mean([t.num_turns for t in scored]),
        mean_tool_calls=_mean([t.total_tool_calls for t in scored]),
        tool_productivity=successes / tool_calls if tool_calls else 0.0,
        mean_completion_tokens=_mean([sum(len(s.completion_token_ids) for s in t.steps) for t in scored]),
        invalid_action_rate=sum(not s.valid_action for s in steps) / len(steps) if steps else 0.0,
        truncated_rate=_mean([t.status == "truncated" for t in scored]),
    )


def per_task_table(trajectories: Sequence[Trajectory]) -> list[dict]:
    """One row per task: samples, successes, mean reward, mean turns, infra errors."""
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_task[t.task_id].append(t)
    rows = []
    for task_id, runs in sorted(by_task.items()):
        scored = [t for t in runs if t.learnable]
        rows.append(
            {
                "task_id": task_id,
                "samples": len(scored),
                "successes": sum(t.success for t in scored),
                "mean_reward": _mean([t.final_reward for t in scored]),
                "mean_turns": _mean([t.num_turns for t in scored]),
                "tool_calls": sum(t.total_tool_calls for t in scored),
                "infra_errors": len(runs) - len(scored),
            }
        )
    return rows


class PairedComparison(BaseModel):
    """Run A minus run B, task by task (see the module docstring)."""

    tasks: list[str]
    rate_a: list[float]
    rate_b: list[float]
    mean_difference: float
    ci: tuple[float, float]
    only_in_a: int
    only_in_b: int


def _success_rates(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    by_task: dict[str, list[bool]] = defaultdict(list)
    for t in trajectories:
        if t.learnable:
            by_task[t.task_id].append(t.success)
    return {task: sum(v) / len(v) for task, v in by_task.items()}


def paired_difference(
    a: Sequence[Trajectory], b: Sequence[Trajectory], resamples: int = 10_000, seed: int = 0
) -> PairedComparison:
    """Per-task success-rate differences A - B with a 95% paired bootstrap interval on their mean."""
    rates_a, rates_b = _success_rates(a), _success_rates(b)
    tasks = sorted(set(rates_a) & set(rates_b))
    ra = np.array([rates_a[t] for t in tasks])
    rb = np.array([rates_b[t] for t in tasks])
    diff = ra - rb
    if len(tasks) == 0:
        mean, ci = 0.0, (-1.0, 1.0)
    else:
        rng = np.random.default_rng(seed)
        means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
        mean, ci = float(diff.mean()), (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    return PairedComparison(
        tasks=tasks, rate_a=ra.tolist(), rate_b=rb.tolist(), mean_difference=mean, ci=ci,
        only_in_a=len(set(rates_a) - set(tasks)), only_in_b=len(set(rates_b) - set(tasks)),
    )
