"""The one turn loop: every episode — chains, tree branches, evaluation, SFT demonstrations and
``agentrl run`` — is played by :func:`play_turns`, whatever chooses the actions.

**Actors** choose actions. An :class:`Actor` is shared by many episodes; :meth:`Actor.begin`
starts one episode's :class:`ActorSession` (the conversation so far), which can :meth:`fork`
for a tree branch:

=====================  ==========================================================================
:class:`TokenActor`    a token :class:`~agentrl.policy.base.Policy` through a
                       :class:`~agentrl.policy.render.ChatRenderer` (exact ids + logprobs:
                       trainable)
:class:`ChatActor`     a chat-only model (messages in, text out; evaluation only)
:class:`ScriptedActor` a scripted agent (``env.oracle_action()``, random actions, any
                       ``act(observation) -> str``)
=====================  ==========================================================================

**The loop** (:func:`play_turns`) is the same for all of them: turn ``t`` samples with seed
``turn_seed(seed, t)`` (``t`` = depth from the root, so a seeded rollout does not depend on how
requests are batched and a tree branch continues its own seed stream); the step is recorded
*before* the env runs it (a step taken before a failure survives for debugging); the env's
``info["error"]`` is kept in ``step.info["error"]``; and the episode ends as

=================================  =========================================================
what happened                      ending
=================================  =========================================================
env terminated                     ``status="ok"``
env truncated                      ``truncated`` / the env's ``info["truncation"]``, else ``max_turns``
prompt fills the context           ``truncated`` / ``context_overflow`` (before generating)
completion hit the context end     ``truncated`` / ``context_overflow`` (step recorded, env not stepped)
completion hit ``max_tokens``      ``truncated`` / ``length`` (step recorded, env not stepped)
=================================  =========================================================

A length-cut turn is not an invalid action: the env never sees it. Each step's ``state_key`` is
the env's key *before* the action, its ``policy_version`` the version of the weights that
sampled it — the oldest, with ``token_versions`` the version of each token, when a weight update
cut the turn mid-decode (the in-process HF sampler).

**Failures** (:func:`run_actor`, one deadline over env creation, reset, every generation and
every tool call): an :class:`agentrl.errors.InfraError` or the deadline → ``status="infra_error"``
(masked downstream, retried by the engine, never scored). A deadline's error names where the
episode was waiting, and the first one in a process logs every thread's stack (a hung backend
shows where it hangs). Any other exception is a bug: with
``strict=True`` (the default) it propagates with its traceback and fails the run; with
``strict=False`` it is logged and the episode masked as ``infra_error``. A bare ``OSError`` or
``ConnectionError`` is *not* infrastructure: backends wrap theirs in typed errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from agentrl.env.agents import Agent
from agentrl.env.base import TextEnv
from agentrl.errors import InfraError
from agentrl.policy.base import (
    Completion,
    ContextOverflowError,
    Policy,
    SamplingParams,
    TokenIdsUnavailableError,
    generation_budget,
)
from agentrl.policy.render import ChatRenderer, Conversation
from agentrl.types import StepRecord, Trajectory

log = logging.getLogger(__name__)

EnvFactory = Callable[[], TextEnv | Awaitable[TextEnv]]


def derive_seed(*parts: object) -> int:
    """A 31-bit, well-mixed seed from ``parts`` (e.g. ``derive_seed(episode_seed, turn)``)."""
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


def turn_seed(episode_seed: int, turn: int) -> int:
    """The sampling seed of turn ``turn`` (depth from the root) of an episode or branch."""
    return derive_seed(episode_seed, turn)


async def make_env(factory: EnvFactory) -> TextEnv:
    """Call an env factory that may be sync or async."""
    env = factory()
    return await env if inspect.isawaitable(env) else env


async def close_env(env: TextEnv | None, timeout_s: float = 10.0) -> None:
    """Release an env's resources; a failing or hanging close is logged, never raised."""
    if env is None:
        return
    try:
        await asyncio.wait_for(env.aclose(), timeout_s)
    except Exception as exc:  # noqa: BLE001 - closing must never turn a finished episode into a failure
        log.warning("closing %s failed: %s", type(env).__name__, exc)


# ---------------------------------------------------------------------------------------- actors
@dataclasses.dataclass
class Turn:
    """What an actor produced for one turn: the step (env fields still empty; None when nothing
    could be generated) and a truncation reason when the turn was cut."""

    step: StepRecord | None
    truncation: str | None = None


class ActorSession(Protocol):
    """One episode's actor state (the conversation so far)."""

    @property
    def segment_breaks(self) -> int: ...

    async def act(self, seed: int | None) -> Turn: ...

    def observe(self, observation: str) -> None: ...

    def fork(self, env: TextEnv) -> ActorSession:
        """An independent copy at this point, acting in ``env`` (a fork of this session's env)."""
        ...


class Actor(Protocol):
    """Chooses actions; :meth:`begin` starts one episode after ``env.areset``."""

    def begin(self, env: TextEnv, observation: str) -> ActorSession: ...


class TokenActor:
    """A token policy through a chat renderer: the steps carry exact ids and behaviour logprobs."""

    def __init__(
        self,
        policy: Policy,
        renderer: ChatRenderer,
        sampling: SamplingParams,
        max_context_tokens: int | None = None,
    ):
        self.policy = policy
        self.renderer = renderer
        self.sampling = sampling.with_stop_token_ids(renderer.stop_token_ids)
        limits = [x for x in (max_context_tokens, policy.max_context_tokens) if x is not None]
        self.max_context_tokens = min(limits) if limits else None

    def begin(self, env: TextEnv, observation: str) -> _TokenSession:
        return _TokenSession(self, self.renderer.start(env.system_prompt(), observation, env.tools))


class _TokenSession:
    def __init__(self, actor: TokenActor, conversation: Conversation):
        self.actor = actor
        self.conversation = conversation

    @property
    def segment_breaks(self) -> int:
        return self.conversation.segment_breaks

    async def act(self, seed: int | None) -> Turn:
        actor, conversation = self.actor, self.conversation
        sampling = actor.sampling if seed is None else actor.sampling.model_copy(update={"seed": seed})
        prompt = conversation.prompt_ids()
        try:
            budget = generation_budget(len(prompt), sampling, actor.max_context_tokens)
            completion = await actor.policy.generate(
                prompt, sampling.model_copy(update={"max_tokens": budget})
            )
        except ContextOverflowError:
            return Turn(None, "context_overflow")
        if not completion.token_ids:
            raise TokenIdsUnavailableError(
                "the policy returned no token ids: token-level rollouts need a backend that returns them "
                "(use a ChatActor for chat-only models)"
            )
        step = StepRecord(
            index=0,
            observation="",
            action=conversation.add_completion(completion.token_ids),
            prompt_token_ids=prompt,
            completion_token_ids=completion.token_ids,
            logprobs=completion.logprobs,
            finish_reason=completion.finish_reason,
            segment=conversation.segment,
            policy_version=completion.policy_version,
            token_versions=completion.token_versions,
        )
        truncation = None
        if completion.finish_reason == "length":
            truncation = "length" if budget == sampling.max_tokens else "context_overflow"
        return Turn(step, truncation)

    def observe(self, observation: str) -> None:
        self.conversation.add_observation(observation)

    def fork(self, env: TextEnv) -> _TokenSession:
        return _TokenSession(self.actor, self.conversation.fork())


class ChatPolicy(Protocol):
    """A chat-only model (e.g. :class:`agentrl.policy.openai.OpenAIChatPolicy`): messages in, text out."""

    policy_version: int

    async def chat(
        self, messages: list[dict], sampling: SamplingParams, tools: list[dict] | None = None
    ) -> Completion: ...


class ChatActor:
    """A chat-only model over messages: text steps without token ids (evaluation, never training)."""

    def __init__(self, policy: ChatPolicy, sampling: SamplingParams):
        self.policy = policy
        self.sampling = sampling

    def begin(self, env: TextEnv, observation: str) -> _ChatSession:
        system = env.system_prompt()
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": observation}
        ]
        return _ChatSession(self, messages, [t.to_openai() for t in env.tools] or None)


class _ChatSession:
    segment_breaks = 0

    def __init__(self, actor: ChatActor, messages: list[dict], tools: list[dict] | None):
        self.actor, self.messages, self.tools = actor, messages, tools
        self._last_action = ""

    async def act(self, seed: int | None) -> Turn:
        sampling = (
            self.actor.sampling if seed is None else self.actor.sampling.model_copy(update={"seed": seed})
        )
        completion = await self.actor.policy.chat(self.messages, sampling, self.tools)
        self._last_action = completion.text or ""
        step = StepRecord(
            index=0,
            observation="",
            action=self._last_action,
            finish_reason=completion.finish_reason,
            policy_version=completion.policy_version,
        )
        return Turn(step, "length" if completion.finish_reason == "length" else None)

    def observe(self, observation: str) -> None:
        self.messages += [
            {"role": "assistant", "content": self._last_action},
            {"role": "user", "content": observation},
        ]

    def fork(self, env: TextEnv) -> _ChatSession:
        return _ChatSession(self.actor, list(self.messages), self.tools)


class ScriptedActor:
    """A scripted agent; ``make_agent(env)`` builds the agent for an episode's env
    (e.g. ``lambda env: OracleAgent(env)``; see :func:`agentrl.env.agents.make_agent`)."""

    def __init__(self, make_agent: Callable[[TextEnv], Agent]):
        self.make_agent = make_agent

    def begin(self, env: TextEnv, observation: str) -> _ScriptedSession:
        return _ScriptedSession(self, self.make_agent(env), observation)


class _ScriptedSession:
    segment_breaks = 0

    def __init__(self, actor: ScriptedActor, agent: Agent, observation: str):
        self.actor, self.agent, self.observation = actor, agent, observation

    async def act(self, seed: int | None) -> Turn:
        return Turn(StepRecord(index=0, observation="", action=self.agent.act(self.observation)))

    def observe(self, observation: str) -> None:
        self.observation = observation

    def fork(self, env: TextEnv) -> _ScriptedSession:
        return _ScriptedSession(self.actor, self.actor.make_agent(env), self.observation)


# ------------------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class Ending:
    """How an episode (or a tree branch) ended."""

    status: str  # "ok" | "truncated"
    truncation: str | None = None
    success: bool = False


async def play_turns(
    env: TextEnv,
    session: ActorSession,
    observation: str,
    state_key: str | None,
    *,
    depth: int,
    seed: int | None,
    record: Callable[[StepRecord], None],
    branch_point: Callable[[StepRecord, str, str | None], Awaitable[None]] | None = None,
) -> Ending:
    """THE turn loop: act → record → ``env.astep`` → observe, from ``depth`` until the episode ends.

    ``record(step)`` receives each step as soon as it is sampled; ``branch_point(step, observation,
    state_key)`` (trees) is awaited after every step the episode goes on from.
    """
    while True:
        turn = await session.act(None if seed is None else turn_seed(seed, depth))
        if turn.step is None:
            return Ending("truncated", turn.truncation)
        step = turn.step
        step.index, step.observation, step.state_key = depth, observation, state_key
        record(step)
        if turn.truncation is not None:
            return Ending("truncated", turn.truncation)
        observation, reward, terminated, truncated, info = await env.astep(step.action)
        step.reward, step.tool_calls, step.valid_action = (
            float(reward),
            info["tool_calls"],
            info["valid_action"],
        )
        if info.get("error"):
            step.info["error"] = info["error"]
        if terminated or truncated:
            if truncated:
                return Ending("truncated", info.get("truncation") or "max_turns", bool(info["success"]))
            return Ending("ok", None, bool(info["success"]))
        session.observe(observation)
        state_key = info["state_key"]
        depth += 1
        if branch_point is not None:
            await branch_point(step, observation, state_key)


async def play(env: TextEnv, actor: Actor, trajectory: Trajectory, *, seed: int | None = None) -> Trajectory:
    """One chain episode on a fresh ``env`` (its seed/task from ``trajectory``), appended in place.

    ``seed`` is the sampling seed the per-turn seeds derive from (None: the actor's own).
    """
    options = {"task_id": trajectory.task_id} if trajectory.task_id else None
    observation, info = await env.areset(seed=trajectory.seed, options=options)
    trajectory.task_id = info["task_id"]
    session = actor.begin(env, observation)
    try:
        ending = await play_turns(
            env, session, observation, info["state_key"], depth=0, seed=seed, record=trajectory.steps.append
        )
    finally:
        trajectory.info["segment_breaks"] = session.segment_breaks
    trajectory.status, trajectory.truncation, trajectory.success = (
        ending.status,
        ending.truncation,
        ending.success,
    )
    return trajectory


def finalize(trajectory: Trajectory) -> Trajectory:
    """Fill the summary fields from the steps (reward sum, oldest policy version, token counts)
    and take the step columns now, while the episode ends, not when the trainer builds the batch."""
    trajectory.final_reward = sum(s.reward for s in trajectory.steps)
    versions = [s.policy_version for s in trajectory.steps if s.policy_version is not None]
    trajectory.policy_version = min(versions) if versions else None
    trajectory.info["generated_tokens"] = int(trajectory.take_columns().rows["n_tokens"].sum())
    return trajectory


def classify(exc: BaseException, strict: bool, what: str = "episode") -> str:
    """The recorded error of a failed episode/branch: infra errors are recorded; any other
    exception is re-raised under ``strict`` or logged with its traceback and recorded."""
    if not isinstance(exc, InfraError):
        if strict:
            raise exc
        log.error(
            "%s failed with an unexpected error (masked: strict is off):\n%s", what, traceback.format_exc()
        )
    return f"{type(exc).__name__}: {exc}"


async def run_actor(
    env_factory: EnvFactory,
    actor: Actor,
    *,
    seed: int | None = None,
    task_id: str | None = None,
    group_id: str = "",
    sampling_seed: int | None = None,
    timeout_s: float | None = None,
    strict: bool = True,
) -> Trajectory:
    """Create an env, play one episode with ``actor`` under one deadline, close the env.

    Infrastructure failures come back as ``status="infra_error"``; other exceptions propagate
    under ``strict`` (see the module docstring).
    """
    trajectory = Trajectory(task_id=task_id or "", seed=seed, group_id=group_id)
    env: TextEnv | None = None
    start = time.perf_counter()
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            env = await make_env(env_factory)
            trajectory.env_id = env.spec.id if env.spec is not None else type(env).__name__
            await play(env, actor, trajectory, seed=sampling_seed)
    except Exception as exc:  # noqa: BLE001 - classified: infra recorded, a bug re-raised under strict
        trajectory.status, trajectory.success = "infra_error", False
        if deadline.expired():
            trajectory.truncation, trajectory.error = (
                "timeout",
                f"TimeoutError: episode deadline of {timeout_s}s passed, waiting in {_waiting_at(exc)}",
            )
            _log_thread_stacks_once()
        else:
            trajectory.truncation, trajectory.error = None, classify(exc, strict)
    finally:
        await close_env(env)
    trajectory.info["duration_s"] = round(time.perf_counter() - start, 4)
    return finalize(trajectory)


def _waiting_at(exc: BaseException) -> str:
    """Where a timed-out episode was waiting: the innermost frame outside asyncio of the
    cancellation that the deadline turned into ``exc``."""
    frames = traceback.extract_tb((exc.__cause__ or exc).__traceback__)
    ours = [f for f in frames if "asyncio" not in Path(f.filename).parts] or frames
    if not ours:
        return "an unknown place"
    return f"{ours[-1].name} ({Path(ours[-1].filename).name}:{ours[-1].lineno})"


_stacks_logged = False


def _log_thread_stacks_once() -> None:
    """Log every thread's stack, the first time an episode passes its deadline in this process."""
    global _stacks_logged
    if _stacks_logged:
        return
    _stacks_logged = True
    names = {t.ident: t.name for t in threading.enumerate()}
    stacks = "".join(
        f"thread {names.get(ident, ident)}:\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items()
    )
    log.warning("an episode passed its deadline; the stack of every thread (logged once):\n%s", stacks)
