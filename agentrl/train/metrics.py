"""Per-step metrics: a JSON Lines file, TensorBoard event files and a learning-curve PNG.

``metrics.jsonl`` holds one object per RL step (``{"step": k, "rollout/success": …}``) plus
evaluation records (``{"step": k, "eval/success": …}``). On ``--resume`` from checkpoint step
k, :meth:`MetricsLog.truncate_after` drops every record after step k — those steps are redone —
and TensorBoard's ``purge_step`` discards their events, so each step appears exactly once. A last
line cut short (a kill or a full disk mid-write) is dropped with a warning.

:func:`staleness_metrics` adds the per-token staleness of a step's batch — how many policy
versions older than the update's weights the sampler's were — as ``rollout/staleness_mean``,
``rollout/staleness_max`` and the histogram ``rollout/staleness_hist/k`` (the fraction of policy
tokens sampled k versions back). :func:`attempt_metrics` counts the episode attempts that failed
(an infrastructure error or the deadline) behind a step's batch, as ``rollout/failed_attempts``:
a retried attempt is not silent even when its retry succeeded.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrl.types import Trajectory

if TYPE_CHECKING:
    from agentrl.rollout.engine import Group

log = logging.getLogger(__name__)


def staleness_metrics(groups: Iterable[Group], version: int) -> dict[str, float]:
    """Per-token staleness of ``groups`` (chains or trees) trained at policy ``version``."""
    tokens: Counter[int] = Counter()
    for group in groups:
        for step in group.steps():
            tokens.update(version - v for v in step.completion_versions())  # a turn cut by an update: per token
    total = sum(tokens.values())
    if not total:
        return {"rollout/staleness_mean": 0.0, "rollout/staleness_max": 0.0}
    out = {
        "rollout/staleness_mean": sum(k * n for k, n in tokens.items()) / total,
        "rollout/staleness_max": float(max(k for k, n in tokens.items() if n)),
    }
    return out | {f"rollout/staleness_hist/{k}": n / total for k, n in sorted(tokens.items()) if n}


def attempt_metrics(groups: Iterable[Group]) -> dict[str, float]:
    """``rollout/failed_attempts``: the failed attempts behind the chain episodes of ``groups``,
    retried or not (each episode's ``info["attempts"]``, less the one that succeeded)."""
    failed = sum(
        episode.info["attempts"] - (episode.status != "infra_error")
        for group in groups
        for episode in group.members
        if isinstance(episode, Trajectory) and "attempts" in episode.info  # trees: branches are not retried
    )
    return {"rollout/failed_attempts": float(failed)}


class MetricsLog:
    """Append-only metrics with an optional TensorBoard mirror."""

    def __init__(self, directory: str | Path, tensorboard: bool = True, purge_step: int | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "metrics.jsonl"
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.directory / "tensorboard"), purge_step=purge_step)

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step`` (a resumed run redoes the rest)."""
        if not self.path.exists():
            return
        kept = [record for record in self.records() if record["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(record) + "\n" for record in kept))
        tmp.replace(self.path)

    def write(self, step: int, values: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        records = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i != len(lines) - 1:
                    raise ValueError(f"{self.path}:{i + 1}: not a JSON record") from None
                log.warning("%s: dropped a partial last line (%d bytes, an interrupted write)", self.path, len(line))
        return records

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_learning_curves(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Three panels against the RL step: success (rollouts; sampled and greedy evaluation with
    95% Wilson intervals), reward, and policy entropy — each on its own axis (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[float], list[float]]:
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        return ([p[0] for p in points], [p[1] for p in points]) if points else ([], [])

    fig, (success, reward, entropy) = plt.subplots(1, 3, figsize=(13, 3.6))
    xs, ys = series("rollout/success")
    success.plot(xs, ys, color="0.6", lw=1, label="rollout (train batch)")
    for prefix, label, color in (("eval/", "eval, sampled", "C0"), ("eval/greedy_", "eval, greedy", "C3")):
        rows = [r for r in records if r.get(f"{prefix}success") is not None]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        rates = [r[f"{prefix}success"] for r in rows]
        n = rows[-1].get(f"{prefix}episodes")
        success.plot(steps, rates, marker="o", markersize=3, color=color, label=label + (f" (n={n:.0f})" if n else ""))
        if all(r.get(f"{prefix}episodes") for r in rows):
            from agentrl.eval.metrics import wilson_interval

            n_ok = [int(r[f"{prefix}episodes"]) for r in rows]
            low, high = zip(*(wilson_interval(round(p * k), k) for p, k in zip(rates, n_ok)))
            success.fill_between(steps, low, high, color=color, alpha=0.15, lw=0)
    success.set_ylim(-0.02, 1.02)
    success.set_title("success (bands: 95% interval)", fontsize=9)
    for ax, key, label in ((reward, "rollout/reward", "rollout reward"), (entropy, "train/entropy", "entropy (nats/token)")):
        xs, ys = series(key)
        ax.plot(xs, ys, color="C2" if ax is reward else "C4")
        ax.set_title(label, fontsize=9)
    for ax in (success, reward, entropy):
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    if any(series(k)[0] for k in ("rollout/success", "eval/success", "eval/greedy_success")):
        success.legend(loc="best", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
