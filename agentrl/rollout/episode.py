"""One episode: env ⇄ chat renderer ⇄ policy, recorded as a :class:`~agentrl.types.Trajectory`.

:func:`play` is the loop (it fills a trajectory in place, so the steps taken before a failure
survive for debugging); :func:`run_episode` adds what every caller wants around it — one
deadline covering env creation (sandbox boot), reset, every generation and every tool call, and
the classification of failures:

=================================  =========================================================
what happened                      trajectory
=================================  =========================================================
env terminated                     ``status="ok"``
env truncated (max turns, invalid  ``status="truncated"``, ``truncation`` = the env's reason
actions in a row)
prompt fills the context           ``truncated`` / ``context_overflow`` (before generating)
completion hit the context end     ``truncated`` / ``context_overflow`` (step recorded, env not stepped)
completion hit ``max_tokens``      ``truncated`` / ``length`` (step recorded, env not stepped)
deadline passed                    ``infra_error`` / ``timeout``
sandbox / backend / I/O failure    ``infra_error`` (``error`` says what), never reward 0
=================================  =========================================================

A length-cut turn is not an invalid action: the env never sees it, nothing is generated after it.
``final_reward`` is Σ r_t over the recorded steps. Each step's ``state_key`` is the env's key
*before* the action (from the previous ``info``), its ``policy_version`` the version of the
weights that sampled it; the trajectory's ``policy_version`` is the oldest of them (staleness is
measured from the oldest).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from agentrl.env.base import TextEnv
from agentrl.policy.base import (
    Completion,
    ContextOverflowError,
    Policy,
    PolicyBackendError,
    SamplingParams,
    TokenIdsUnavailableError,
    generation_budget,
)
from agentrl.policy.render import ChatRenderer, Conversation
from agentrl.types import StepRecord, Trajectory

log = logging.getLogger(__name__)

EnvFactory = Callable[[], TextEnv | Awaitable[TextEnv]]

try:  # the sandbox layer's typed failures (optional: rollouts work without it)
    from agentrl.sandbox.errors import SandboxError
except ImportError:  # pragma: no cover - only when the sandbox package is absent
    SandboxError = ()  # type: ignore[assignment,misc]

#: Exceptions that mean "the infrastructure failed", not "the agent failed".
INFRA_ERRORS: tuple[type[BaseException], ...] = tuple(
    t for t in (SandboxError, PolicyBackendError, ConnectionError, OSError, TimeoutError) if isinstance(t, type)
)


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


def turn_seed(episode_seed: int, turn: int) -> int:
    """The sampling seed of one turn, from the episode's sampling seed (31-bit, well mixed)."""
    return zlib.crc32(f"{episode_seed}:{turn}".encode()) & 0x7FFFFFFF


def stream_sampling(renderer: ChatRenderer, sampling: SamplingParams) -> SamplingParams:
    """The sampling params of a rollout: the user's plus the template's end-of-turn token."""
    return sampling.with_stop_token_ids(renderer.stop_token_ids)


async def generate_step(
    policy: Policy,
    conversation: Conversation,
    sampling: SamplingParams,
    max_context_tokens: int | None,
) -> tuple[StepRecord | None, str | None]:
    """Sample one turn. Returns the step (env fields still empty) and a truncation reason:
    ``(None, "context_overflow")`` when nothing could be generated, ``(step, "length")`` or
    ``(step, "context_overflow")`` when the completion was cut, ``(step, None)`` otherwise."""
    prompt = conversation.prompt_ids()
    limits = [x for x in (max_context_tokens, policy.max_context_tokens) if x is not None]
    try:
        budget = generation_budget(len(prompt), sampling, min(limits) if limits else None)
        completion = await policy.generate(prompt, sampling.model_copy(update={"max_tokens": budget}))
    except ContextOverflowError:
        return None, "context_overflow"
    if not completion.token_ids:
        raise TokenIdsUnavailableError(
            "the policy returned no token ids: token-level rollouts need a backend that returns them "
            "(use a chat-only policy with run_chat_episode for evaluation)"
        )
    action = conversation.add_completion(completion.token_ids)
    step = StepRecord(
        index=0,
        observation="",
        action=action,
        prompt_token_ids=prompt,
        completion_token_ids=completion.token_ids,
        logprobs=completion.logprobs,
        finish_reason=completion.finish_reason,
        segment=conversation.segment,
        policy_version=completion.policy_version,
    )
    truncation = None
    if completion.finish_reason == "length":
        truncation = "length" if budget == sampling.max_tokens else "context_overflow"
    return step, truncation


async def play(
    env: TextEnv,
    policy: Policy,
    renderer: ChatRenderer,
    trajectory: Trajectory,
    sampling: SamplingParams,
    *,
    max_context_tokens: int | None = None,
) -> Trajectory:
    """Run one episode on a fresh ``env``, appending to ``trajectory`` (seed/task from it)."""
    options = {"task_id": trajectory.task_id} if trajectory.task_id else None
    observation, info = await env.areset(seed=trajectory.seed, options=options)
    trajectory.task_id = info["task_id"]
    conversation = renderer.start(env.system_prompt(), observation, env.tools)
    sampling = stream_sampling(renderer, sampling)
    state_key = info["state_key"]
    while True:
        turn_sampling = sampling
        if sampling.seed is not None:  # one seed per turn: samples do not depend on how requests are batched
            turn_sampling = sampling.model_copy(update={"seed": turn_seed(sampling.seed, len(trajectory.steps))})
        step, truncation = await generate_step(policy, conversation, turn_sampling, max_context_tokens)
        if step is None:
            trajectory.status, trajectory.truncation = "truncated", truncation
            break
        step.index, step.observation, step.state_key = len(trajectory.steps), observation, state_key
        trajectory.steps.append(step)
        if truncation is not None:
            trajectory.status, trajectory.truncation = "truncated", truncation
            break
        observation, reward, terminated, truncated, info = await env.astep(step.action)
        step.reward, step.tool_calls, step.valid_action = float(reward), info["tool_calls"], info["valid_action"]
        if info.get("error"):
            step.info["error"] = info["error"]
        if terminated or truncated:
            trajectory.success = bool(info["success"])
            if truncated:
                trajectory.status, trajectory.truncation = "truncated", info.get("truncation", "max_turns")
            break
        conversation.add_observation(observation)
        state_key = info["state_key"]
    trajectory.info["segment_breaks"] = conversation.segment_breaks
    return trajectory


def finalize(trajectory: Trajectory) -> Trajectory:
    """Fill the summary fields from the steps (reward sum, oldest policy version, token counts)."""
    trajectory.final_reward = sum(s.reward for s in trajectory.steps)
    versions = [s.policy_version for s in trajectory.steps if s.policy_version is not None]
    trajectory.policy_version = min(versions) if versions else None
    trajectory.info["generated_tokens"] = sum(len(s.completion_token_ids) for s in trajectory.steps)
    return trajectory


def mark_failure(trajectory: Trajectory, exc: BaseException, *, timed_out: bool = False) -> None:
    """Record an infrastructure failure (``timed_out``: the episode's deadline passed)."""
    trajectory.status = "infra_error"
    trajectory.success = False
    trajectory.truncation = "timeout" if timed_out else None
    trajectory.error = f"{type(exc).__name__}: {exc}"


async def run_episode(
    env_factory: EnvFactory,
    policy: Policy,
    renderer: ChatRenderer,
    sampling: SamplingParams,
    *,
    seed: int | None = None,
    task_id: str | None = None,
    group_id: str = "",
    timeout_s: float | None = None,
    max_context_tokens: int | None = None,
    strict: bool = False,
) -> Trajectory:
    """Create an env, play one episode under one deadline, close the env; never raises on
    infrastructure failures (they come back as ``status="infra_error"``).

    ``strict=True`` re-raises exceptions that are not typed infrastructure failures (bugs),
    instead of recording them as ``infra_error``.
    """
    trajectory = Trajectory(task_id=task_id or "", seed=seed, group_id=group_id)
    return await _guarded(
        env_factory,
        trajectory,
        lambda env: play(env, policy, renderer, trajectory, sampling, max_context_tokens=max_context_tokens),
        timeout_s,
        strict,
    )


class ChatPolicy(Protocol):
    """A chat-only model (e.g. :class:`agentrl.policy.openai.OpenAIChatPolicy`): messages in, text out."""

    policy_version: int

    async def chat(self, messages: list[dict], sampling: SamplingParams, tools: list[dict] | None = None) -> Completion: ...


async def play_chat(env: TextEnv, policy: ChatPolicy, trajectory: Trajectory, sampling: SamplingParams) -> Trajectory:
    """The episode loop over messages (no token ids: for evaluation, never for training)."""
    options = {"task_id": trajectory.task_id} if trajectory.task_id else None
    observation, info = await env.areset(seed=trajectory.seed, options=options)
    trajectory.task_id = info["task_id"]
    system = env.system_prompt()
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": observation}]
    tools = [t.to_openai() for t in env.tools] or None
    state_key = info["state_key"]
    while True:
        completion = await policy.chat(messages, sampling, tools)
        action = completion.text or ""
        step = StepRecord(
            index=len(trajectory.steps),
            observation=observation,
            action=action,
            finish_reason=completion.finish_reason,
            state_key=state_key,
            policy_version=completion.policy_version,
        )
        trajectory.steps.append(step)
        if completion.finish_reason == "length":
            trajectory.status, trajectory.truncation = "truncated", "length"
            return trajectory
        observation, reward, terminated, truncated, info = await env.astep(action)
        step.reward, step.tool_calls, step.valid_action = float(reward), info["tool_calls"], info["valid_action"]
        if terminated or truncated:
            trajectory.success = bool(info["success"])
            if truncated:
                trajectory.status, trajectory.truncation = "truncated", info.get("truncation", "max_turns")
            return trajectory
        messages += [{"role": "assistant", "content": action}, {"role": "user", "content": observation}]
        state_key = info["state_key"]


async def run_chat_episode(
    env_factory: EnvFactory,
    policy: ChatPolicy,
    sampling: SamplingParams,
    *,
    seed: int | None = None,
    task_id: str | None = None,
    timeout_s: float | None = None,
    strict: bool = False,
) -> Trajectory:
    """:func:`run_episode` for chat-only models: same deadline and failure handling, text-only steps."""
    trajectory = Trajectory(task_id=task_id or "", seed=seed)
    return await _guarded(env_factory, trajectory, lambda env: play_chat(env, policy, trajectory, sampling), timeout_s, strict)


async def _guarded(
    env_factory: EnvFactory,
    trajectory: Trajectory,
    body: Callable[[TextEnv], Awaitable[Trajectory]],
    timeout_s: float | None,
    strict: bool,
) -> Trajectory:
    """Env creation + ``body`` under one deadline, failures classified, env always closed."""
    env: TextEnv | None = None
    start = time.perf_counter()
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            env = await make_env(env_factory)
            trajectory.env_id = env.spec.id if env.spec is not None else type(env).__name__
            await body(env)
    except Exception as exc:
        if deadline.expired():
            mark_failure(trajectory, TimeoutError(f"episode deadline of {timeout_s}s passed"), timed_out=True)
        elif isinstance(exc, INFRA_ERRORS):
            mark_failure(trajectory, exc)
        elif strict:
            raise
        else:
            log.error("episode failed with an unexpected error:\n%s", traceback.format_exc())
            mark_failure(trajectory, exc)
    finally:
        await close_env(env)
    trajectory.info["duration_s"] = round(time.perf_counter() - start, 4)
    return finalize(trajectory)
