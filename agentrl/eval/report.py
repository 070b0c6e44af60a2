"""A self-contained HTML report of one evaluation run, or two side by side.

The page has no external resources: plots are PNGs (matplotlib, Agg backend) embedded as data
URIs, styles are inline, so the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from agentrl.eval.metrics import Metrics, compute_metrics, per_task_table
from agentrl.types import Trajectory

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{width:380px;border:1px solid #eee}
pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;max-height:300px;overflow:auto}
.ok{color:#177a2c}.bad{color:#b3261e}.turn{margin:.4em 0 .8em 0}
"""


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_images(runs: dict[str, Sequence[Trajectory]]) -> dict[str, str]:
    """Reward distribution, success by number of turns, tool-call histogram (one series per run)."""
    images = {}
    scored = {name: [t for t in trajs if t.learnable] for name, trajs in runs.items()}

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.hist([[t.final_reward for t in trajs] for trajs in scored.values()], bins=10, label=list(scored))
    ax.set(title="Reward distribution", xlabel="episode reward", ylabel="episodes")
    ax.legend()
    images["reward"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    width = 0.8 / max(1, len(scored))
    for i, (name, trajs) in enumerate(scored.items()):
        by_turns: dict[int, list[bool]] = {}
        for t in trajs:
            by_turns.setdefault(t.num_turns, []).append(t.success)
        turns = sorted(by_turns)
        ax.bar([n + i * width for n in turns], [sum(v) / len(v) for v in (by_turns[n] for n in turns)], width, label=name)
    ax.set(title="Success rate by number of turns", xlabel="turns", ylabel="success rate", ylim=(0, 1.05))
    ax.legend()
    images["turns"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for i, (name, trajs) in enumerate(scored.items()):
        counts = Counter(t.total_tool_calls for t in trajs)
        keys = sorted(counts)
        ax.bar([k + i * width for k in keys], [counts[k] for k in keys], width, label=name)
    ax.set(title="Tool calls per episode", xlabel="tool calls", ylabel="episodes")
    ax.legend()
    images["tools"] = _png(fig)
    return images


def _pass_at(k: int, m: Metrics) -> str:
    return f"{m.pass_at_k[k]:.3f}" if k in m.pass_at_k else "–"


def _metrics_rows(metrics: dict[str, Metrics]) -> str:
    names = list(metrics)
    fields = [
        ("episodes (scored)", lambda m: f"{m.scored_episodes} / {m.episodes}"),
        ("infra errors (left out)", lambda m: str(m.infra_errors)),
        ("tasks", lambda m: str(m.tasks)),
        ("success rate [95% CI]", lambda m: f"{m.success_rate:.3f} [{m.success_ci[0]:.3f}, {m.success_ci[1]:.3f}]"),
        ("mean reward", lambda m: f"{m.mean_reward:.3f}"),
        *[(f"pass@{k}", partial(_pass_at, k)) for k in sorted({k for m in metrics.values() for k in m.pass_at_k})],
        ("mean turns", lambda m: f"{m.mean_turns:.2f}"),
        ("mean tool calls", lambda m: f"{m.mean_tool_calls:.2f}"),
        ("tool productivity (successes / tool call)", lambda m: f"{m.tool_productivity:.3f}"),
        ("mean completion tokens", lambda m: f"{m.mean_completion_tokens:.1f}"),
        ("invalid-action rate", lambda m: f"{m.invalid_action_rate:.3f}"),
        ("truncated", lambda m: f"{m.truncated_rate:.3f}"),
    ]
    head = "<tr><th>metric</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    body = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{fn(metrics[n])}</td>" for n in names) + "</tr>" for label, fn in fields
    )
    return f"<table id='summary'>{head}{body}</table>"


def _task_table(trajectories: Sequence[Trajectory]) -> str:
    rows = per_task_table(trajectories)
    head = "<tr><th>task</th><th>samples</th><th>successes</th><th>mean reward</th><th>mean turns</th><th>tool calls</th><th>infra errors</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['task_id'])}</td><td>{r['samples']}</td><td>{r['successes']}</td>"
        f"<td>{r['mean_reward']:.3f}</td><td>{r['mean_turns']:.2f}</td><td>{r['tool_calls']}</td><td>{r['infra_errors']}</td></tr>"
        for r in rows
    )
    return f"<table id='tasks'>{head}{body}</table>"


def _transcripts(trajectories: Sequence[Trajectory], count: int) -> str:
    """A few full episodes: successes and failures both, so a reader sees what went wrong."""
    wins = [t for t in trajectories if t.success][: (count + 1) // 2]
    losses = [t for t in trajectories if not t.success][: count - len(wins)]
    parts = []
    for t in wins + losses:
        verdict = "<span class='ok'>success</span>" if t.success else f"<span class='bad'>{t.status}</span>"
        parts.append(f"<h3>{html.escape(t.task_id)} (seed {t.seed}) — {verdict}, reward {t.final_reward:g}</h3>")
        if t.error:
            parts.append(f"<p class='bad'>{html.escape(t.error)}</p>")
        for s in t.steps:
            parts.append(
                f"<div class='turn'><b>observation</b><pre>{html.escape(s.observation)}</pre>"
                f"<b>action</b> <small>(reward {s.reward:g}, tool calls {s.tool_calls}"
                f"{'' if s.valid_action else ', invalid'})</small><pre>{html.escape(s.action)}</pre></div>"
            )
    return "".join(parts)


def render_report(runs: dict[str, Sequence[Trajectory]], title: str, transcripts: int = 4) -> str:
    """HTML for one run (a per-task table and transcripts) or several (side by side)."""
    metrics = {name: compute_metrics(trajs, ks=(1, 5, 10)) for name, trajs in runs.items()}
    images = plot_images(runs)
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        _metrics_rows(metrics),
        "<p>Infra errors (sandbox or backend failures) are counted but left out of every score.</p>",
        "<h2>Plots</h2><div class='plots'>",
        *(f"<img alt='{key}' src='{src}'>" for key, src in images.items()),
        "</div>",
    ]
    if len(runs) == 1:
        (trajs,) = runs.values()
        sections += ["<h2>Per task</h2>", _task_table(trajs), "<h2>Transcripts</h2>", _transcripts(trajs, transcripts)]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def write_report(path: str | Path, runs: dict[str, Sequence[Trajectory]], title: str) -> Path:
    path = Path(path)
    path.write_text(render_report(runs, title), encoding="utf-8")
    return path
