"""The `agentrl` command line: `envs`, `run`, and the commands each area adds (sandbox, train, eval)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import agentrl
from agentrl.cliutils import (
    env_option,
    make_env_or_exit,
    not_an_env_option,
    parse_env_options,
    quiet_libraries,
    writable_dir,
)
from agentrl.env import AGENTS, aplay_episode, make_agent
from agentrl.env import cli as env_cli
from agentrl.env.registry import env_sources, plugin_errors
from agentrl.eval.cli import eval_group
from agentrl.policy import cli as policy_cli
from agentrl.sandbox import cli as sandbox_cli
from agentrl.train import cli as train_cli
from agentrl.types import write_jsonl

console = Console()


@click.group()
@click.version_option(agentrl.__version__, prog_name="agentrl")
def main() -> None:
    """agentrl: train and evaluate tool-using LLM agents with reinforcement learning."""
    quiet_libraries()


@main.group()
def envs() -> None:
    """List and inspect registered environments."""


@envs.command("list")
def envs_list() -> None:
    """Every environment id registered by agentrl and installed plug-ins."""
    if not console.is_terminal:  # piped: plain tab-separated lines, never cut to a width
        for env_id, source in env_sources().items():
            click.echo(f"{env_id}\t{source}")
    else:
        table = Table("id", "entry point", title="agentrl environments")
        for env_id, source in env_sources().items():
            table.add_row(env_id, source)
        console.print(table)
    for name, error in plugin_errors().items():
        console.print(f"[yellow]plug-in {name!r} failed to load: {error}[/yellow]")


@envs.command("show")
@click.argument("env_id")
@env_option
@click.option("--seed", default=0, show_default=True, help="Seed of the example episode.")
def envs_show(env_id: str, options: tuple[str, ...], seed: int) -> None:
    """Tools, instructions, splits and an example (oracle) episode of ENV_ID."""
    env = make_env_or_exit(env_id, parse_env_options(options))
    console.rule(f"[bold]{env_id}")
    console.print(f"[bold]class[/bold] {type(env).__module__}.{type(env).__name__}")
    console.print(f"[bold]options[/bold] {env.config.model_dump()}")
    console.print(f"[bold]splits[/bold] {env.tasks.split_sizes()}")
    console.print("[bold]instructions[/bold]")
    console.print(env.system_prompt() or "(none)", markup=False)
    if env.tools:
        console.print("[bold]tools[/bold]")
        for tool in env.tools:
            console.print(f"  {tool.name}: {tool.description}", markup=False)
            console.print(f"    parameters: {json.dumps(tool.parameters)}", markup=False)
    console.rule("example episode (oracle)")
    try:
        trajectory = asyncio.run(aplay_episode(env, make_agent("oracle", env), seed=seed))
    except NotImplementedError as exc:
        console.print(f"(no example: {exc})")
        return
    finally:
        env.close()
    for step in trajectory.steps:
        console.print("observation", style="cyan")
        console.print(step.observation, highlight=False, markup=False)
        console.print("action", style="green")
        console.print(step.action, highlight=False, markup=False)
        console.print(f"[dim]reward={step.reward} tool_calls={step.tool_calls} valid={step.valid_action}[/dim]")
    console.print(f"[bold]success={trajectory.success} reward={trajectory.final_reward}[/bold]")


@main.command()
@click.option("--env", "env_id", required=True, help="Environment id, e.g. agentrl/Maze-v0.")
@click.option("--agent", type=click.Choice(sorted(AGENTS)), default="oracle", show_default=True)
@click.option("--episodes", "-n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("--seed", default=0, show_default=True, help="Episode i uses seed SEED+i.")
@env_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), callback=not_an_env_option,
              help="Write the trajectories here as JSONL.")
def run(env_id: str, agent: str, episodes: int, split: str, seed: int, options: tuple[str, ...], output: str | None) -> None:
    """Play scripted episodes (oracle or random agent) and print a summary."""
    env = make_env_or_exit(env_id, parse_env_options(options), split=split)
    if output:
        writable_dir(Path(output).parent)  # fail now, not after the episodes
    trajectories = []
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            bar = progress.add_task(f"{agent} on {env_id}", total=episodes)
            for i in range(episodes):
                player = make_agent(agent, env, seed=seed + i)
                trajectories.append(asyncio.run(aplay_episode(env, player, seed=seed + i)))
                progress.advance(bar)
    finally:
        env.close()
    if output:
        write_jsonl(output, trajectories)
    table = Table("metric", "value", title=f"{agent} agent, {episodes} episodes, split={split}")
    table.add_row("success rate", f"{statistics.fmean(t.success for t in trajectories):.3f}")
    table.add_row("mean reward", f"{statistics.fmean(t.final_reward for t in trajectories):.3f}")
    table.add_row("mean turns", f"{statistics.fmean(t.num_turns for t in trajectories):.2f}")
    table.add_row("mean tool calls", f"{statistics.fmean(t.total_tool_calls for t in trajectories):.2f}")
    invalid = sum(not s.valid_action for t in trajectories for s in t.steps)
    table.add_row("invalid-action rate", f"{invalid / max(1, sum(t.num_turns for t in trajectories)):.3f}")
    table.add_row("truncated", str(sum(t.status == "truncated" for t in trajectories)))
    console.print(table)


# Commands contributed by other areas are added below, one line each.
main.add_command(eval_group)
main.add_command(sandbox_cli.sandbox)
main.add_command(train_cli.train)
main.add_command(policy_cli.serve)
main.add_command(env_cli.env)


if __name__ == "__main__":
    sys.exit(main())
