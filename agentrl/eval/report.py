"""A self-contained HTML report of one evaluation run, or two side by side.

The page has no external resources: plots are PNGs (matplotlib, Agg backend) embedded as data
URIs, styles are inline, so the file can be mailed, archived or opened offline. It states each
run's settings (agent, model, temperature, k, env and its options, split, date, agentrl version);
a page of two runs adds their per-task paired differences with a 95% interval on the gap, and a
warning when the runs were not on the same env, options and split.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from agentrl.eval.metrics import Metrics, compute_metrics, paired_difference, per_task_table
from agentrl.eval.runner import EvalSettings
from agentrl.types import Trajectory

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{width:380px;border:1px solid #eee}
pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;max-height:300px;overflow:auto}
.ok{color:#177a2c}.bad{color:#b3261e}.turn{margin:.4em 0 .8em 0}
.warn{background:#fff4e5;border:1px solid #e8a33d;padding:6px 10px}
"""
#: The settings rows that must agree for two runs to be comparable.
SAME_TASKS = ("env", "env options", "split")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_images(runs: dict[str, Sequence[Trajectory]]) -> dict[str, str]:
    """Reward distribution, success by number of turns, tool-call histogram (one series per run)."""
    import matplotlib  # here, not at import time: `agentrl --help` must not pay for matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    counts = 3  # the first rows count episodes; the others score them and mean nothing when none was scored

    def cell(i: int, fn, m: Metrics) -> str:
        return fn(m) if i < counts or m.scored_episodes else "n/a"

    body = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{cell(i, fn, metrics[n])}</td>" for n in names) + "</tr>"
        for i, (label, fn) in enumerate(fields)
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


def describe_run(settings: EvalSettings, info: dict | None = None) -> dict[str, str]:
    """The settings a reader needs to interpret a run, as table rows."""
    a, info = settings.agent, info or {}
    return {
        "agent": a.kind,
        "model": a.model or "–",
        "temperature": f"{a.temperature:g}",
        "max tokens per turn": str(a.max_tokens),
        "samples per task (k)": str(settings.samples_per_task),
        "env": settings.env_id,
        "env options": json.dumps(settings.env_options, sort_keys=True),
        "split": settings.split,
        "max tasks": str(settings.max_tasks or "all"),
        "seed": str(settings.seed),
        "date": info.get("created") or "unknown",
        "agentrl version": info.get("agentrl_version") or "unknown",
    }


def different_tasks(details: dict[str, dict[str, str]]) -> list[str]:
    """The rows of :data:`SAME_TASKS` on which the runs disagree (empty: comparable)."""
    return [row for row in SAME_TASKS if len({d.get(row) for d in details.values()}) > 1]


def _settings_table(details: dict[str, dict[str, str]]) -> str:
    names = list(details)
    rows = list(next(iter(details.values())))
    head = "<tr><th>setting</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"
    body = "".join(
        f"<tr><td>{row}</td>" + "".join(f"<td>{html.escape(details[n].get(row, ''))}</td>" for n in names) + "</tr>"
        for row in rows
    )
    return f"<table id='settings'>{head}{body}</table>"


def _paired_section(names: list[str], a: Sequence[Trajectory], b: Sequence[Trajectory]) -> str:
    cmp = paired_difference(a, b)
    na, nb = (html.escape(n) for n in names)
    lines = [
        (f"<p id='gap'>Success rate {na} − {nb}, paired by task over {len(cmp.tasks)} tasks: "
         f"<b>{cmp.mean_difference:+.3f}</b> [95% paired bootstrap interval {cmp.ci[0]:+.3f}, {cmp.ci[1]:+.3f}]</p>")
    ]
    if cmp.only_in_a or cmp.only_in_b:
        lines.append(f"<p class='warn'>Tasks scored in only one run are left out: {cmp.only_in_a} only in {na}, "
                     f"{cmp.only_in_b} only in {nb}.</p>")
    head = f"<tr><th>task</th><th>{na}</th><th>{nb}</th><th>difference</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{x:.3f}</td><td>{y:.3f}</td><td>{x - y:+.3f}</td></tr>"
        for t, x, y in zip(cmp.tasks, cmp.rate_a, cmp.rate_b, strict=True)
    )
    return "\n".join(lines) + f"<table id='paired'>{head}{body}</table>"


def render_report(
    runs: dict[str, Sequence[Trajectory]],
    title: str,
    transcripts: int = 4,
    details: dict[str, dict[str, str]] | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> str:
    """HTML for one run (a per-task table and transcripts) or two (side by side, paired by task).

    ``details``: per run, the rows of :func:`describe_run`; ``ks``: the k of pass@k to show.
    """
    metrics = {name: compute_metrics(trajs, ks=ks) for name, trajs in runs.items()}
    images = plot_images(runs)
    sections = [f"<h1>{html.escape(title)}</h1>"]
    if details:
        differing = different_tasks(details)
        if differing:
            sections.append(f"<p class='warn' id='mismatch'>These runs are not on the same tasks: their "
                            f"{', '.join(differing)} differ, so their scores do not compare.</p>")
        sections += ["<h2>Settings</h2>", _settings_table(details)]
    sections += [
        "<h2>Summary</h2>",
        _metrics_rows(metrics),
        "<p>Infra errors (sandbox or backend failures) are counted but left out of every score.</p>",
    ]
    if len(runs) == 2:
        names = list(runs)
        sections += ["<h2>Paired by task</h2>", _paired_section(names, runs[names[0]], runs[names[1]])]
    sections += [
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


def write_report(path: str | Path, runs: dict[str, Sequence[Trajectory]], title: str, **options) -> Path:
    """Write :func:`render_report` to ``path`` (``options``: its ``details`` and ``ks``)."""
    path = Path(path)
    path.write_text(render_report(runs, title, **options), encoding="utf-8")
    return path
