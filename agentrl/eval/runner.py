"""Evaluate an agent on an environment's split: k samples per task, concurrent, resumable.

Every finished episode is appended to ``<out>/episodes.jsonl`` as soon as it ends, so a run that
is interrupted (Ctrl-C, a crash, a killed job) resumes where it stopped: episodes already on
disk are not run again, except infra failures, which are retried. A last line cut short (a kill
or a full disk in the middle of a write) is dropped with a warning and its episode run again.
``<out>/run.json`` records the run's settings (plus when it was created, by which agentrl
version, and the rule of the agent's draws); resuming with different settings is refused, naming
the fields, instead of mixing two runs (so is a random or sampled run begun under another rule).

Episode (task, sample i) always uses seed ``seed + i`` — the same seed for the same sample, so
runs are reproducible and two agents can be compared on identical episodes. The agent's own draws
(the random agent's choices, a model's sampling) come from a stream of (seed, task), so the tasks
of one sample are independent draws and a sampled run does not depend on how episodes were batched.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import agentrl
from agentrl.cliutils import describe_differences, dotted_differences
from agentrl.env import aplay_episode, make_agent
from agentrl.errors import InfraError
from agentrl.types import Trajectory, write_jsonl

EPISODES_FILE = "episodes.jsonl"
SETTINGS_FILE = "run.json"
#: Keys of run.json that describe the run but are not settings (not compared on resume).
RUN_INFO_KEYS = ("created", "agentrl_version", "agent_draws")
#: The rule of the agent's own draws (:func:`agent_seed`), kept in run.json: a random or sampled run
#: begun under another rule (runs without it drew once per sample) is not resumed into this one.
AGENT_DRAWS = "per (seed, task)"

log = logging.getLogger(__name__)

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


def agent_seed(seed: int, task_id: str) -> int:
    """The seed of the agent's own draws (the random agent's choices, a model's sampling) in the
    episode of ``task_id`` at env seed ``seed``: one stream per (task, sample), or every task of a
    sample would repeat the same draws; and not a shared generator, or a sampled run would depend
    on how its episodes were batched."""
    from agentrl.rollout.episode import derive_seed  # here: rollout imports transformers

    return derive_seed(seed, task_id)


def scripted_episode_fn(settings: EvalSettings) -> EpisodeFn:
    """Episode function for the scripted agents (``settings.agent.kind``: ``oracle`` or ``random``)."""

    async def play(task_id: str, seed: int) -> Trajectory:
        env = agentrl.make(settings.env_id, **settings.env_options)
        try:
            # The env gets the sample's seed (identical episodes across agents), the agent its own stream.
            agent = make_agent(settings.agent.kind, env, seed=agent_seed(seed, task_id))
            return await aplay_episode(env, agent, seed=seed, task_id=task_id)
        finally:
            await env.aclose()
            env.close()

    return play


def load_finished(out_dir: Path) -> list[Trajectory]:
    """The episodes on disk. A last line cut short by a kill or a full disk is dropped (with a
    warning) and cut off the file, so the next append starts on a clean line; a bad line anywhere
    else is real corruption and raises, naming it."""
    path = out_dir / EPISODES_FILE
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    records, last = [], max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(Trajectory.model_validate_json(line))
        except ValidationError as exc:
            if i != last:
                raise ValueError(f"{path}:{i + 1}: not a valid Trajectory: {exc}") from exc
            log.warning("%s: dropped a partial last line (%d bytes, an interrupted write); its episode runs again",
                        path, len(line))
            os.truncate(path, len(data) - len(b"\n".join(lines[i:])))
    return records


def _rewrite(path: Path, records: list[Trajectory]) -> None:
    """Replace the file's records atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    write_jsonl(tmp, records)
    os.replace(tmp, path)


def _check_settings(out_dir: Path, settings: EvalSettings) -> None:
    if (out_dir / SETTINGS_FILE).exists():
        previous = read_settings(out_dir)
        diff = dotted_differences(previous.model_dump(mode="json"), settings.model_dump(mode="json"))
        if diff:
            raise ValueError(f"{out_dir} holds a run with other settings ({describe_differences(diff)}); "
                             "use another output folder")
        draws = read_run_json(out_dir).get("agent_draws")
        if (settings.agent.kind == "random" or settings.agent.temperature > 0) and draws != AGENT_DRAWS:
            raise ValueError(f"{out_dir} holds a run whose agent's draws were seeded {draws or 'once per sample'}, "
                             f"not {AGENT_DRAWS}: its episodes and new ones would not be one run; use another output folder")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        info = {"created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "agentrl_version": agentrl.__version__, "agent_draws": AGENT_DRAWS}
        (out_dir / SETTINGS_FILE).write_text(json.dumps({**settings.model_dump(mode="json"), **info}, indent=2))


class _LogProgress:
    """Progress as plain lines on stderr, for logs and pipes (a terminal gets a live bar)."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done, self.start = label, total, 0, time.monotonic()
        self.every = max(1, total // 10)

    def advance(self) -> None:
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            elapsed = time.monotonic() - self.start
            print(f"{self.label}: {self.done}/{self.total} episodes, {elapsed:.0f} s", file=sys.stderr, flush=True)


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
    sizes = probe.tasks.split_sizes()
    probe.close()
    if not tasks:
        have = ", ".join(f"{name} {n}" for name, n in sizes.items() if n)
        raise ValueError(f"{settings.env_id} has no tasks in split {settings.split!r} (it has: {have})")

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
        _rewrite(out_dir / EPISODES_FILE, kept)

    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    results: list[Trajectory] = []

    async def worker(advance: Callable[[], None]) -> None:
        while not queue.empty():
            task_id, sample = queue.get_nowait()
            seed = settings.seed + sample
            try:
                trajectory = await episode_fn(task_id, seed)
            except InfraError as exc:  # masked and retried on resume; anything else is a bug and fails the run
                trajectory = Trajectory(
                    env_id=settings.env_id, task_id=task_id, seed=seed, status="infra_error",
                    error=f"{type(exc).__name__}: {exc}",
                )
            trajectory.group_id = task_id
            trajectory.info["sample"] = sample
            write_jsonl(out_dir / EPISODES_FILE, [trajectory], append=True)
            results.append(trajectory)
            advance()

    n_workers = max(1, min(concurrency, len(todo)))
    label = f"eval {settings.agent.label} on {settings.env_id}"
    if show_progress and todo and sys.stderr.isatty():
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as progress:
            bar = progress.add_task(label, total=len(todo))
            await asyncio.gather(*(worker(lambda: progress.advance(bar)) for _ in range(n_workers)))
    elif todo:
        advance = _LogProgress(label, len(todo)).advance if show_progress else lambda: None
        await asyncio.gather(*(worker(advance) for _ in range(n_workers)))
    return kept + results


def read_run_json(out_dir: str | Path) -> dict:
    path = Path(out_dir) / SETTINGS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} is not an eval run folder (no {SETTINGS_FILE})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None


def read_settings(out_dir: str | Path) -> EvalSettings:
    data = read_run_json(out_dir)
    return EvalSettings.model_validate({k: v for k, v in data.items() if k not in RUN_INFO_KEYS})


def run_info(out_dir: str | Path) -> dict:
    """``created``, ``agentrl_version`` and ``agent_draws`` of a run (``None`` for runs written before
    they were kept)."""
    data = read_run_json(out_dir)
    return {k: data.get(k) for k in RUN_INFO_KEYS}
