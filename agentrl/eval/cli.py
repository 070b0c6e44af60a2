"""`agentrl eval run | report | compare`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from agentrl.eval.agents import AgentLoadError, build_runner
from agentrl.eval.metrics import compute_metrics
from agentrl.eval.report import write_report
from agentrl.eval.runner import AGENT_KINDS, AgentSpec, EvalSettings, evaluate, load_finished, read_settings

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
@click.option("--agent", "kind", type=click.Choice(AGENT_KINDS), default="oracle", show_default=True,
              help="Scripted (oracle, random) or model-backed (hf, vllm, openai, openai-chat).")
@click.option("--model", help="hf/vllm: model directory; openai/openai-chat: the served model name.")
@click.option("--base-url", help="openai/openai-chat: server URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--tokenizer", help="openai: tokenizer directory used to render prompts as token ids.")
@click.option("--api-key", envvar="OPENAI_API_KEY", help="Bearer token (default: $OPENAI_API_KEY); never stored.")
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(min=1), help="Per turn.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("-k", "--samples", "samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Samples per task (for pass@k).")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Evaluate only the first N tasks of the split.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, help="Sample i of every task uses seed SEED+i.")
@click.option("--option", "-o", "options", multiple=True, help="Env option KEY=VALUE (repeatable).")
@click.option("--output", "-O", required=True, type=click.Path(file_okay=False),
              help="Run directory: episodes.jsonl, run.json, report.html. Re-running resumes.")
def eval_run(env_id, kind, model, base_url, tokenizer, api_key, temperature, max_tokens, split, samples, max_tasks,
             concurrency, seed, options, output) -> None:
    """Evaluate an agent on ENV's split; resumable, with a summary and an HTML report."""
    from agentrl.cli import make_env_or_exit, parse_env_options

    env_options = parse_env_options(options)
    make_env_or_exit(env_id, env_options).close()  # unknown ids and bad options fail here, fast
    agent = AgentSpec(kind=kind, model=model, base_url=base_url, tokenizer=tokenizer, temperature=temperature,
                      max_tokens=max_tokens)
    settings = EvalSettings(env_id=env_id, agent=agent, split=split, samples_per_task=samples, max_tasks=max_tasks,
                            seed=seed, env_options=env_options)
    try:
        runner = build_runner(settings, api_key)
    except AgentLoadError as exc:
        raise click.ClickException(str(exc)) from None

    async def run_all():
        try:
            return await evaluate(settings, runner.play, output, concurrency=concurrency)
        finally:
            await runner.aclose()

    try:
        trajectories = asyncio.run(run_all())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    ks = tuple(k for k in (1, 5, 10) if k <= samples)
    title = f"{agent.label} on {env_id} ({split})"
    console.print(_summary_table(title, trajectories, ks))
    console.print(f"report: {write_report(Path(output) / 'report.html', {agent.label: trajectories}, title)}")


@eval_group.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def eval_report(run_dir: str) -> None:
    """(Re)write RUN_DIR/report.html from its episodes."""
    settings = read_settings(run_dir)
    label = settings.agent.label
    title = f"{label} on {settings.env_id} ({settings.split})"
    report = write_report(Path(run_dir) / "report.html", {label: load_finished(Path(run_dir))}, title)
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
        label = f"{settings.agent.label} @ {Path(run_dir).name}"
        runs[label] = load_finished(Path(run_dir))
        console.print(_summary_table(label, runs[label], (1,)))
    report = write_report(output, runs, " vs ".join(runs))
    console.print(f"report: {report}")
