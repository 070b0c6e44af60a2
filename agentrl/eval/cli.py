"""`agentrl eval run | report | compare`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agentrl.cliutils import (
    disk_errors,
    env_option,
    make_env_or_exit,
    not_an_env_option,
    parse_env_options,
    warn,
    writable_dir,
)
from agentrl.eval.agents import AgentLoadError, build_runner
from agentrl.eval.metrics import compute_metrics, report_ks
from agentrl.eval.report import describe_run, different_tasks, write_report
from agentrl.eval.runner import (
    AGENT_KINDS,
    EPISODES_FILE,
    AgentSpec,
    EvalSettings,
    evaluate,
    load_finished,
    read_settings,
    run_info,
)

console = Console()
SCRIPTED = ("oracle", "random")


def _summary_table(title: str, trajectories, ks) -> Table:
    m = compute_metrics(trajectories, ks=ks)
    table = Table("metric", "value", title=title)
    table.add_row("episodes scored / run", f"{m.scored_episodes} / {m.episodes}")
    table.add_row("infra errors (left out)", str(m.infra_errors))
    if not m.scored_episodes:  # nothing scored: there is no rate, and certainly not 0
        for label in ("success rate [95% CI]", "mean reward", "mean turns", "mean tool calls", "tool productivity",
                      "invalid-action rate", "truncated"):
            table.add_row(label, "n/a")
        return table
    table.add_row("success rate [95% CI]", f"{m.success_rate:.3f} [{m.success_ci[0]:.3f}, {m.success_ci[1]:.3f}]")
    table.add_row("mean reward", f"{m.mean_reward:.3f}")
    for k, value in m.pass_at_k.items():
        table.add_row(f"pass@{k}", f"{value:.3f}")
    table.add_row("mean turns", f"{m.mean_turns:.2f}")
    table.add_row("mean tool calls", f"{m.mean_tool_calls:.2f}")
    table.add_row("tool productivity", f"{m.tool_productivity:.3f}")
    table.add_row("invalid-action rate", f"{m.invalid_action_rate:.3f}")
    table.add_row("truncated", f"{m.truncated_rate:.3f}")  # cut short: max turns, or a turn at --max-tokens
    return table


def _infra_failures(trajectories) -> str | None:
    """What to tell about the run's infra failures (masked, retried on resume), or None."""
    failed = [t for t in trajectories if not t.learnable]
    if not failed:
        return None
    first = (failed[0].error or "").strip().splitlines()[0]
    return (f"{len(failed)} of {len(trajectories)} failed for infrastructure reasons (left out of the scores); "
            f"fix the cause and run the same command again to retry them. First error: {first}")


def _open_run(run_dir: str) -> tuple[EvalSettings, dict, list]:
    """Settings, run info and episodes of RUN_DIR, or a one-line error when it is not a run."""
    try:
        return read_settings(run_dir), run_info(run_dir), load_finished(Path(run_dir))
    except (FileNotFoundError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise click.ClickException(f"{run_dir}: not a readable eval run ({first})") from None


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
@env_option
@click.option("--output", "-o", "-O", required=True, type=click.Path(file_okay=False), callback=not_an_env_option,
              help="Run folder: episodes.jsonl, run.json, report.html. Re-running resumes.")
def eval_run(env_id, kind, model, base_url, tokenizer, api_key, temperature, max_tokens, split, samples, max_tasks,
             concurrency, seed, options, output) -> None:
    """Evaluate an agent on ENV's split; resumable, with a summary and an HTML report."""
    env_options = parse_env_options(options)
    make_env_or_exit(env_id, env_options, split=split).close()  # unknown ids, bad options, empty splits: fast
    writable_dir(output)
    if samples > 1 and temperature == 0 and kind not in SCRIPTED:
        warn(f"-k {samples} with --temperature 0 (greedy decoding): the {samples} samples of a task are identical, "
             f"so pass@{samples} equals pass@1; set --temperature > 0 to sample")
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
        with disk_errors(str(Path(output) / EPISODES_FILE)):
            trajectories = asyncio.run(run_all())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # every finished episode is on disk already
        episodes = Path(output) / EPISODES_FILE
        click.echo(f"interrupted: {len(load_finished(Path(output)))} episodes kept in {episodes}; "
                   "run the same command again to resume", err=True)
        raise click.exceptions.Exit(130) from None
    ks = report_ks(samples)
    title = f"{agent.label} on {env_id} ({split})"
    console.print(_summary_table(title, trajectories, ks))
    details = {agent.label: describe_run(settings, run_info(output))}
    with disk_errors("report.html"):
        report = write_report(Path(output) / "report.html", {agent.label: trajectories}, title, details=details, ks=ks)
    console.print(f"report: {report}")
    infra = _infra_failures(trajectories)
    if infra and not any(t.learnable for t in trajectories):
        raise click.ClickException(f"no episode was scored: {infra}")
    if infra:
        warn(infra)


@eval_group.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def eval_report(run_dir: str) -> None:
    """(Re)write RUN_DIR/report.html from its episodes."""
    settings, info, trajectories = _open_run(run_dir)
    label = settings.agent.label
    title = f"{label} on {settings.env_id} ({settings.split})"
    report = write_report(Path(run_dir) / "report.html", {label: trajectories}, title,
                          details={label: describe_run(settings, info)}, ks=report_ks(settings.samples_per_task))
    console.print(f"report: {report}")


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-o", "-O", default="compare.html", show_default=True, type=click.Path(dir_okay=False))
def eval_compare(run_a: str, run_b: str, output: str) -> None:
    """Put two runs side by side: settings, metrics, per-task paired differences, overlaid plots."""
    writable_dir(Path(output).parent)  # fail now, not after reading both runs
    runs, details, ks = {}, {}, {1}
    for run_dir in (run_a, run_b):
        settings, info, trajectories = _open_run(run_dir)
        label = f"{settings.agent.label} @ {Path(run_dir).name}"
        runs[label], details[label] = trajectories, describe_run(settings, info)
        ks |= set(report_ks(settings.samples_per_task))
        console.print(_summary_table(label, trajectories, report_ks(settings.samples_per_task)))
    differing = different_tasks(details)
    if differing:
        warn(f"the two runs differ in {', '.join(differing)}: they are not on the same tasks, scores do not compare")
    report = write_report(output, runs, " vs ".join(runs), details=details, ks=sorted(ks))
    console.print(f"report: {report}")
