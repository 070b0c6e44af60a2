"""`agentrl eval run | report | compare`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from agentrl.env import EnvOptionError, UnknownEnvError
from agentrl.eval.metrics import compute_metrics
from agentrl.eval.report import write_report
from agentrl.eval.runner import EvalSettings, evaluate, load_finished, read_settings, scripted_episode_fn

console = Console()


def _summary_table(title: str, trajectories, ks) -> Table:
    m = compute_metrics(trajectories, ks=ks)
    table = Table("metric", "value", title=title)
    table.add_row("episodes scored / run", f"{m.scored_episodes} / {m.episodes}")
    table.add_row("infra errors (left out)", str(m.infra_errors))
    table.add_row("success rate [95% CI]", f"{m.success_rate:.3f} [{m.success_ci[0]:.3f}, {m.success_ci[1]:.3f}]")
    table.add_row("mean reward", f"{m.mean_reward:.3f}")
    for k, value in m.pass_at_k.items():
        table.add_row(f"pass@{k}", f"{value:.3f}")
    table.add_row("mean turns", f"{m.mean_turns:.2f}")
    table.add_row("mean tool calls", f"{m.mean_tool_calls:.2f}")
    table.add_row("tool productivity", f"{m.tool_productivity:.3f}")
    table.add_row("invalid-action rate", f"{m.invalid_action_rate:.3f}")
    return table


@click.group("eval")
def eval_group() -> None:
    """Evaluate agents on bundled tasks and report the results."""


@eval_group.command("run")
@click.option("--env", "env_id", required=True, help="Environment id, e.g. agentrl/Calculator-v0.")
@click.option("--agent", default="oracle", show_default=True, help="oracle | random")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("-k", "--samples", "samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Samples per task (for pass@k).")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Evaluate only the first N tasks of the split.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, help="Sample i of every task uses seed SEED+i.")
@click.option("--option", "-o", "options", multiple=True, help="Env option KEY=VALUE (repeatable).")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False),
              help="Run directory: episodes.jsonl, run.json, report.html. Re-running resumes.")
def eval_run(env_id, agent, split, samples, max_tasks, concurrency, seed, options, output) -> None:
    """Evaluate AGENT on ENV's split; resumable, with a summary and an HTML report."""
    from agentrl.cli import parse_env_options

    if agent not in ("oracle", "random"):
        raise click.BadParameter(f"unknown agent {agent!r}; choose oracle or random", param_hint="--agent")
    settings = EvalSettings(
        env_id=env_id, agent=agent, split=split, samples_per_task=samples, max_tasks=max_tasks, seed=seed,
        env_options=parse_env_options(options),
    )
    try:
        trajectories = asyncio.run(evaluate(settings, scripted_episode_fn(settings), output, concurrency=concurrency))
    except (UnknownEnvError, EnvOptionError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    ks = tuple(k for k in (1, 5, 10) if k <= samples)
    console.print(_summary_table(f"{agent} on {env_id} ({split})", trajectories, ks))
    report = write_report(Path(output) / "report.html", {agent: trajectories}, f"{agent} on {env_id} ({split})")
    console.print(f"report: {report}")


@eval_group.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def eval_report(run_dir: str) -> None:
    """(Re)write RUN_DIR/report.html from its episodes."""
    settings = read_settings(run_dir)
    title = f"{settings.agent} on {settings.env_id} ({settings.split})"
    report = write_report(Path(run_dir) / "report.html", {settings.agent: load_finished(Path(run_dir))}, title)
    console.print(f"report: {report}")


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-O", default="compare.html", show_default=True, type=click.Path(dir_okay=False))
def eval_compare(run_a: str, run_b: str, output: str) -> None:
    """Put two runs side by side: metrics table and overlaid plots."""
    runs = {}
    for run_dir in (run_a, run_b):
        settings = read_settings(run_dir)
        label = f"{settings.agent} @ {Path(run_dir).name}"
        runs[label] = load_finished(Path(run_dir))
        console.print(_summary_table(label, runs[label], (1,)))
    report = write_report(output, runs, " vs ".join(runs))
    console.print(f"report: {report}")
