"""`TextEnv`: the Gymnasium text environment every agentrl environment builds on.

Contract (what every env returns, whatever it simulates):

``reset(seed=None, options=None) -> (observation, info)``
    Starts an episode. ``options={"task_id": ...}`` picks a task, ``options={"split": ...}``
    samples one from a split (default: the env's ``split`` option). The same seed and options
    always give the same episode.

``step(action_text) -> (observation, reward, terminated, truncated, info)``
    ``terminated`` means the task ended (solved, failed, answered); ``truncated`` means the
    episode was cut off (``info["truncation"]`` says why: ``max_turns`` or ``invalid_actions``).
    A malformed action never raises: the observation says what was wrong, ``valid_action`` is
    False and the episode goes on, up to ``max_invalid_actions`` in a row. Text that is not
    valid Unicode (a lone surrogate, e.g. from a chat API's ``"\ud800"`` escape) is refused here,
    before the env's hook sees it. Failures the agent causes are observations and are scored;
    only infrastructure failures raise (:class:`agentrl.errors.InfraError`; the rule is in
    :mod:`agentrl.errors`).

``info`` always holds:
    ``tool_calls`` (int, tools run by this step), ``valid_action`` (bool), ``state_key`` (str or
    None: a canonical key of the state *after* this step, used by GiGPO to find the same state in
    other trajectories; the key from ``reset`` is the initial state), ``success`` (bool, final
    once the episode ends), ``error`` (str or None), ``task_id`` and ``turn``.

``areset`` / ``astep``
    Async twins. The rollout engine uses them. An env implements either the sync hooks
    (``_reset``/``_step``; the async twins then call them directly) or the async hooks
    (``_areset``/``_astep``, for envs that wait on sandboxes or browsers; the sync methods then
    run them on a private event loop).

``fork()`` / ``afork()``
    A new env at the same state, for tree rollouts. The default builds a fresh env with the same
    constructor arguments, resets it with the same episode seed and task, and replays the
    actions; envs with cheap state override it with a copy.

``tasks`` / ``task_ids(split=None)``
    The env's :class:`TaskSet`, and the ids of one split's tasks. ``task_ids`` is None where the
    tasks cannot be listed (a ``RemoteEnv``: they live on its server; pick one by ``task_id``).

Subclasses set ``instructions`` (the system prompt text), ``tools`` (declared tools), a
``Config`` pydantic model for their options, and implement ``build_tasks()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import gymnasium
import numpy as np
from gymnasium.utils import seeding
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrl.env.parsing import ActionError, check_text
from agentrl.env.tasks import SPLITS, Task, TaskSet
from agentrl.types import ToolSpec

T = TypeVar("T")

MAX_TEXT_LENGTH = 1_000_000
SAMPLE_LENGTH = 256
RESET_OPTION_KEYS = ("task_id", "split")


class TextSpace(gymnasium.spaces.Text):
    """Any Unicode string up to ``max_length`` characters.

    Gymnasium's ``Text`` space only admits characters from a fixed charset; observations and
    actions of language agents are arbitrary text, so membership checks only the length.
    ``sample()`` draws short strings from the printable charset (useful for fuzzing).
    """

    def __init__(self, max_length: int = MAX_TEXT_LENGTH, seed: int | None = None):
        charset = "".join(chr(c) for c in range(32, 127)) + "\n"
        super().__init__(max_length=max_length, min_length=0, charset=charset, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask=None, probability=None) -> str:
        """A random printable string of at most ``SAMPLE_LENGTH`` characters (not up to
        ``max_length``: a megabyte of noise per fuzzing call only slows checks down)."""
        if mask is None and probability is None:
            length = int(self.np_random.integers(0, SAMPLE_LENGTH + 1))
            return super().sample(mask=(length, None))
        return super().sample(mask=mask, probability=probability)


class EnvConfig(BaseModel):
    """Options every env accepts; subclasses extend this with their own fields."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=20, ge=1, description="Truncate the episode after this many steps.")
    max_invalid_actions: int | None = Field(
        default=5, ge=1, description="Truncate after this many invalid actions in a row (None: never)."
    )
    split: str = Field(default="train", description="Split that reset() samples tasks from.")


class EnvOptionError(ValueError):
    """An env option or reset option was invalid; the message names the field."""


@dataclasses.dataclass
class StepOutcome:
    """What an env's ``_step`` hook reports; the base class turns it into Gymnasium's 5-tuple."""

    observation: str
    reward: float = 0.0
    terminated: bool = False
    valid_action: bool = True
    tool_calls: int = 0
    success: bool = False
    error: str | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def validate_config(model: type[BaseModel], values: dict[str, Any], owner: str) -> BaseModel:
    """Validate options, turning pydantic's report into one readable error naming each field."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}" for err in exc.errors()
        )
        known = ", ".join(model.model_fields)
        raise EnvOptionError(f"{owner}: invalid option(s) — {problems}. Known options: {known}") from None


class TextEnv(gymnasium.Env[str, str]):
    """Base class for multi-turn text environments (see the module docstring for the contract)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    Config: ClassVar[type[EnvConfig]] = EnvConfig
    instructions: ClassVar[str] = ""
    tools: ClassVar[list[ToolSpec]] = []

    def __new__(cls, *args: Any, **kwargs: Any):
        env = super().__new__(cls)
        env._init_args = (args, dict(kwargs))  # what fork() needs to build a twin
        return env

    def __init__(self, render_mode: str | None = None, **options: Any):
        self.config = validate_config(self.Config, options, type(self).__name__)
        self.render_mode = render_mode
        self.observation_space = TextSpace()
        self.action_space = TextSpace()
        self._tasks: TaskSet | None = None
        self._task: Task | None = None
        self._episode_seed: int | None = None
        self._actions: list[str] = []
        self._turn = 0
        self._invalid_in_row = 0
        self._done = True
        self._last_observation = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for sync_name, async_name in (("_reset", "_areset"), ("_step", "_astep")):
            inherits_both = getattr(cls, sync_name) is getattr(TextEnv, sync_name) and getattr(
                cls, async_name
            ) is getattr(TextEnv, async_name)
            # An intermediate base may leave both by setting `__abstract_env__ = True`.
            if inherits_both and not cls.__dict__.get("__abstract_env__", False):
                raise TypeError(f"{cls.__name__} must implement {sync_name} or {async_name}")

    # ----------------------------------------------------------------- hooks for subclasses
    def build_tasks(self) -> TaskSet:
        """Return the env's task set (called once, lazily)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_tasks()")

    def _reset(self, task: Task) -> str:
        """Start ``task``; return the first observation. ``self.np_random`` is seeded."""
        return self._run_sync(self._areset(task))

    async def _areset(self, task: Task) -> str:
        return self._reset(task)

    def _step(self, action: str) -> StepOutcome:
        """Apply one action; never raise on a malformed one (answer with valid_action=False)."""
        return self._run_sync(self._astep(action))

    async def _astep(self, action: str) -> StepOutcome:
        return self._step(action)

    def state_key(self) -> str | None:
        """Canonical key of the current state for anchor grouping (None: no recurring states)."""
        return None

    def oracle_action(self) -> str:
        """The action a perfect agent takes now (every bundled env ships one)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    def random_action(self, rng: np.random.Generator) -> str:
        """A random action for baselines; envs override this with plausible commands."""
        return self.action_space.sample()

    # ----------------------------------------------------------------- public API
    @property
    def tasks(self) -> TaskSet:
        if self._tasks is None:
            self._tasks = self.build_tasks()
        return self._tasks

    def task_ids(self, split: str | None = None) -> list[str] | None:
        """The ids of ``split``'s tasks (default: the env's ``split`` option), or None when this env
        cannot list its tasks here (a ``RemoteEnv``: they live on its server)."""
        return self.tasks.split(split or self.config.split).ids()

    @property
    def task(self) -> Task | None:
        """The task of the current episode."""
        return self._task

    @property
    def turn(self) -> int:
        return self._turn

    @property
    def done(self) -> bool:
        return self._done

    def system_prompt(self) -> str:
        """Instructions for the agent; tools are passed separately to chat templates."""
        return self.instructions

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        task = self._begin_episode(seed, options)
        observation = self._reset(task)
        return observation, self._started(observation)

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict]:
        task = self._begin_episode(seed, options)
        observation = await self._areset(task)
        return observation, self._started(observation)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        self._check_can_step(action)
        return self._finish_step(action, self._unreadable(action) or self._step(action))

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict]:
        self._check_can_step(action)
        return self._finish_step(action, self._unreadable(action) or await self._astep(action))

    def fork(self) -> TextEnv:
        """A twin at the same state (replays this episode's actions on a fresh env)."""
        twin = self._blank_twin()
        twin.reset(seed=self._episode_seed, options={"task_id": self._require_task().id})
        for action in self._actions:
            twin.step(action)
        return twin

    async def afork(self) -> TextEnv:
        twin = self._blank_twin()
        await twin.areset(seed=self._episode_seed, options={"task_id": self._require_task().id})
        for action in self._actions:
            await twin.astep(action)
        return twin

    def render(self) -> str:
        return self._last_observation

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.run_until_complete(self.aclose())
            self._loop.close()
        self._loop = None
        super().close()

    async def aclose(self) -> None:
        """Release async resources (sandboxes, browsers). Override in async envs."""

    # ----------------------------------------------------------------- internals
    def _blank_twin(self) -> TextEnv:
        args, kwargs = self._init_args
        twin = type(self)(*args, **kwargs)
        twin.spec = self.spec
        return twin

    def _require_task(self) -> Task:
        if self._task is None:
            raise RuntimeError("call reset() before using the episode")
        return self._task

    def _begin_episode(self, seed: int | None, options: dict[str, Any] | None) -> Task:
        options = dict(options or {})
        unknown = set(options) - set(RESET_OPTION_KEYS)
        if unknown:
            raise EnvOptionError(
                f"unknown reset option(s) {sorted(unknown)}; known: {', '.join(RESET_OPTION_KEYS)}"
            )
        super().reset(seed=seed)
        if seed is None:
            # Draw a concrete episode seed so fork() can replay this exact episode.
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self._episode_seed = seed
        self._np_random, _ = seeding.np_random(seed)

        if "task_id" in options:
            try:
                task = self.tasks.get(str(options["task_id"]))
            except KeyError as exc:
                raise EnvOptionError(str(exc.args[0])) from None
        else:
            split = options.get("split", self.config.split)
            if split not in SPLITS:
                raise EnvOptionError(f"split: unknown split {split!r}; choose one of {', '.join(SPLITS)}")
            pool = self.tasks.split(split)
            if len(pool) == 0:
                raise EnvOptionError(f"split: {type(self).__name__} has no tasks in split {split!r}")
            task = pool[int(self.np_random.integers(len(pool)))]
        self._task = task
        self._actions = []
        self._turn = 0
        self._invalid_in_row = 0
        self._done = False
        return task

    def _started(self, observation: str) -> dict[str, Any]:
        self._last_observation = observation
        return {
            "task_id": self._require_task().id,
            "turn": 0,
            "tool_calls": 0,
            "valid_action": True,
            "state_key": self.state_key(),
            "success": False,
            "error": None,
        }

    def _check_can_step(self, action: Any) -> None:
        if self._task is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode is over; call reset() to start a new one")
        if not isinstance(action, str):
            raise TypeError(f"actions are text; got {type(action).__name__}")

    @staticmethod
    def _unreadable(action: str) -> StepOutcome | None:
        """The invalid-action outcome for text that is not valid Unicode, else None."""
        try:
            check_text(action)
        except ActionError as exc:
            return StepOutcome(f"Error: {exc}", valid_action=False, error=str(exc))
        return None

    def _finish_step(self, action: str, outcome: StepOutcome) -> tuple[str, float, bool, bool, dict]:
        self._actions.append(action)
        self._turn += 1
        self._invalid_in_row = 0 if outcome.valid_action else self._invalid_in_row + 1
        truncation = None
        if not outcome.terminated:
            limit = self.config.max_invalid_actions
            if limit is not None and self._invalid_in_row >= limit:
                truncation = "invalid_actions"
            elif self._turn >= self.config.max_turns:
                truncation = "max_turns"
        self._done = outcome.terminated or truncation is not None
        self._last_observation = outcome.observation
        info = {
            **outcome.info,
            "task_id": self._require_task().id,
            "turn": self._turn,
            "tool_calls": outcome.tool_calls,
            "valid_action": outcome.valid_action,
            "state_key": self.state_key(),
            "success": outcome.success,
            "error": outcome.error,
        }
        if truncation is not None:
            info["truncation"] = truncation
        return outcome.observation, float(outcome.reward), outcome.terminated, truncation is not None, info

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run an async hook from the sync API on this env's own event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                f"{type(self).__name__} is async: inside a running event loop use areset()/astep()"
            )
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

