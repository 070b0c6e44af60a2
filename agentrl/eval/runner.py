"""Evaluate an agent on an environment's split: k samples per task, concurrent, resumable.

Every finished episode is appended to ``<out>/episodes.jsonl`` as soon as it ends, so a run that
is interrupted (Ctrl-C, a crash, a killed job) resumes where it stopped: episodes already on
disk are not run again, except infra failures, which are retried. ``<out>/run.json`` records the
run's settings; resuming with different settings is refused instead of mixing two runs.

Episode (task, sample i) always uses seed ``seed + i`` — the same seed for the same sample, so
runs are reproducible and two agents can be compared on identical episodes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import agentrl
from agentrl.env import aplay_episode, make_agent
from agentrl.types import Trajectory, iter_jsonl, write_jsonl

EPISODES_FILE = "episodes.jsonl"
SETTINGS_FILE = "run.json"

# An episode function plays one episode (task id, seed) of some agent and returns its record.
EpisodeFn = Callable[[str, int], Awaitable[Trajectory]]


AgentKind = Literal["oracle", "random", "hf", "vllm", "openai", "openai-chat"]
AGENT_KINDS: tuple[str, ...] = AgentKind.__args__


class AgentSpec(BaseModel):
    """Which agent to evaluate (see :mod:`agentrl.eval.agents`); secrets such as API keys are
    never part of it, so run.json can be shared."""

    model_config = ConfigDict(extra="forbid")

    kind: AgentKind
    model: str | None = None
    base_url: str | None = None
    tokenizer: str | None = None
    temperature: float = Field(default=0.0, ge=0.0)
    max_tokens: int = Field(default=256, ge=1)
    episode_timeout_s: float = Field(default=600.0, gt=0)

    @property
    def label(self) -> str:
        return f"{self.kind}:{Path(self.model).name}" if self.model else self.kind


class EvalSettings(BaseModel):
    """What identifies an evaluation run (stored in run.json)."""

    model_config = ConfigDict(extra="forbid")

    env_id: str
    agent: AgentSpec
    split: str = "test"
    samples_per_task: int = Field(default=1, ge=1)
    max_tasks: int | None = Field(default=None, ge=1)
    seed: int = 0
    env_options: dict = Field(default_factory=dict)


def scripted_episode_fn(settings: EvalSettings) -> EpisodeFn:
    """Episode function for the scripted agents (``settings.agent.kind``: ``oracle`` or ``random``)."""

    async def play(task_id: str, seed: int) -> Trajectory:
        env = agentrl.make(settings.env_id, **settings.env_options)
        try:
            agent = make_agent(settings.agent.kind, env, seed=seed)
            return await aplay_episode(env, agent, seed=seed, task_id=task_id)
        finally:
            await env.aclose()
            env.close()

    return play


def load_finished(out_dir: Path) -> list[Trajectory]:
    path = out_dir / EPISODES_FILE
    return list(iter_jsonl(path, Trajectory)) if path.exists() else []


def _check_settings(out_dir: Path, settings: EvalSettings) -> None:
    path = out_dir / SETTINGS_FILE
    if path.exists():
        previous = EvalSettings.model_validate_json(path.read_text())
        if previous != settings:
            diff = {k: (getattr(previous, k), v) for k, v in settings.model_dump().items() if getattr(previous, k) != v}
            raise ValueError(
                f"{out_dir} holds a run with other settings {diff} (was, now); use another --output directory"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(settings.model_dump_json(indent=2))


async def evaluate(
    settings: EvalSettings,
    episode_fn: EpisodeFn,
    out_dir: str | Path,
    concurrency: int = 8,
    show_progress: bool = True,
) -> list[Trajectory]:
    """Run every missing (task, sample) episode and return all episodes of the run."""
    out_dir = Path(out_dir)
    _check_settings(out_dir, settings)
    probe = agentrl.make(settings.env_id, **settings.env_options)
    tasks = probe.tasks.split(settings.split).ids()[: settings.max_tasks]
    probe.close()

    finished = load_finished(out_dir)
    done = {(t.task_id, t.info.get("sample")) for t in finished if t.status != "infra_error"}
    kept = [t for t in finished if (t.task_id, t.info.get("sample")) in done]
    todo = [
        (task_id, sample)
        for task_id in tasks
        for sample in range(settings.samples_per_task)
        if (task_id, sample) not in done
    ]
    if len(kept) != len(finished):  # drop the infra failures we are about to retry
        write_jsonl(out_dir / EPISODES_FILE, kept)

    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    results: list[Trajectory] = []

    async def worker(progress: Progress | None, bar) -> None:
        while not queue.empty():
            task_id, sample = queue.get_nowait()
            seed = settings.seed + sample
            try:
                trajectory = await episode_fn(task_id, seed)
            except Exception as exc:  # noqa: BLE001 - one broken episode is recorded, the run goes on
                trajectory = Trajectory(
                    env_id=settings.env_id, task_id=task_id, seed=seed, status="infra_error",
                    error=f"{type(exc).__name__}: {exc}",
                )
            trajectory.group_id = task_id
            trajectory.info["sample"] = sample
            write_jsonl(out_dir / EPISODES_FILE, [trajectory], append=True)
            results.append(trajectory)
            if progress is not None:
                progress.advance(bar)

    n_workers = max(1, min(concurrency, len(todo)))
    if show_progress and todo:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as progress:
            bar = progress.add_task(f"eval {settings.agent.label} on {settings.env_id}", total=len(todo))
            await asyncio.gather(*(worker(progress, bar) for _ in range(n_workers)))
    elif todo:
        await asyncio.gather(*(worker(None, None) for _ in range(n_workers)))
    return kept + results


def read_settings(out_dir: str | Path) -> EvalSettings:
    path = Path(out_dir) / SETTINGS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} is not an eval run directory (no {SETTINGS_FILE})")
    return EvalSettings.model_validate(json.loads(path.read_text()))
