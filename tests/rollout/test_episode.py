"""One episode with a real tiny model on the toy envs: exact tokens, truncations, failures."""

import asyncio

import pytest
import torch
from agentrl_envs.toy import MazeEnv

import agentrl
from agentrl.policy import PolicyBackendError, SamplingParams
from agentrl.rollout import TokenActor, run_actor
from agentrl.sandbox.errors import SandboxUnavailable

# The random model rarely writes <|im_end|>; stop strings end its turns after a few tokens.
SHORT_TURNS = SamplingParams(max_tokens=16, stop=("e", "a", " "))


class RecordingPolicy:
    """The real policy, plus a log of every prompt it was given and what it returned."""

    def __init__(self, policy):
        self.policy, self.calls = policy, []
        self.policy_version, self.max_context_tokens = policy.policy_version, policy.max_context_tokens

    async def generate(self, prompt_token_ids, sampling):
        completion = await self.policy.generate(prompt_token_ids, sampling)
        self.calls.append((list(prompt_token_ids), completion))
        return completion


def maze(**options):
    return lambda: agentrl.make("agentrl/Maze-v0", **options)


async def test_recorded_tokens_are_exactly_what_the_policy_saw(policy, renderer, model):
    recorder = RecordingPolicy(policy)
    traj = await run_actor(
        maze(max_invalid_actions=3), TokenActor(recorder, renderer, SHORT_TURNS), seed=11, strict=True
    )
    assert (traj.status, traj.truncation) == ("truncated", "invalid_actions")
    assert traj.num_turns == 3 == len(recorder.calls)
    for step, (prompt, completion) in zip(traj.steps, recorder.calls):
        assert step.prompt_token_ids == prompt
        assert step.completion_token_ids == completion.token_ids and step.logprobs == completion.logprobs
        assert step.segment == 0 and step.policy_version == 0 and step.valid_action is False
    # Each prompt extends the previous prompt + completion verbatim (observation deltas only appended).
    for before, after in zip(traj.steps, traj.steps[1:]):
        sampled = before.prompt_token_ids + before.completion_token_ids
        assert after.prompt_token_ids[: len(sampled)] == sampled
    # One forward pass over the final sequence reproduces every recorded logprob.
    last = traj.steps[-1]
    sequence = torch.tensor([last.prompt_token_ids + last.completion_token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(sequence).logits[0].float(), -1)
    for step in traj.steps:
        start = len(step.prompt_token_ids)
        ids = torch.tensor(step.completion_token_ids)
        recomputed = logp[start - 1 : start - 1 + len(ids)].gather(1, ids[:, None])[:, 0]
        assert torch.allclose(recomputed, torch.tensor(step.logprobs), atol=1e-4)
    # state_key is the state *before* each action: the start cell, since no move was valid.
    env = MazeEnv()
    _, info = env.reset(seed=11)
    assert [s.state_key for s in traj.steps] == [info["state_key"]] * 3
    assert traj.task_id == info["task_id"] and traj.seed == 11 and traj.env_id == "agentrl/Maze-v0"
    assert traj.info["generated_tokens"] == sum(len(s.completion_token_ids) for s in traj.steps)


async def test_max_turns_truncation(policy, renderer):
    traj = await run_actor(
        maze(max_turns=2, max_invalid_actions=None), TokenActor(policy, renderer, SHORT_TURNS), seed=1
    )
    assert (traj.status, traj.truncation, traj.num_turns) == ("truncated", "max_turns", 2)


async def test_length_cut_ends_the_episode_without_stepping_the_env(policy, renderer):
    traj = await run_actor(maze(), TokenActor(policy, renderer, SamplingParams(max_tokens=3)), seed=2)
    assert (traj.status, traj.truncation, traj.num_turns) == ("truncated", "length", 1)
    step = traj.steps[0]
    assert step.finish_reason == "length" and len(step.completion_token_ids) == 3
    assert step.valid_action is True  # a cut turn is not an invalid action


async def test_context_overflow_is_a_clean_truncation(policy, renderer, tokenizer):
    prompt_len = len(renderer.start(MazeEnv.instructions, MazeEnv().reset(seed=3)[0]).prompt_ids())
    full = await run_actor(
        maze(), TokenActor(policy, renderer, SHORT_TURNS, max_context_tokens=prompt_len), seed=3
    )
    assert (full.status, full.truncation, full.num_turns) == ("truncated", "context_overflow", 0)
    actor = TokenActor(policy, renderer, SamplingParams(max_tokens=8), max_context_tokens=prompt_len + 2)
    cut = await run_actor(maze(), actor, seed=3)
    assert (cut.status, cut.truncation, cut.num_turns) == ("truncated", "context_overflow", 1)
    assert len(cut.steps[0].completion_token_ids) == 2


class SlowMaze(MazeEnv):
    async def _astep(self, action):
        await asyncio.sleep(30)
        return self._step(action)


async def test_timeout_covers_the_whole_episode_and_is_an_infra_error(policy, renderer):
    traj = await run_actor(SlowMaze, TokenActor(policy, renderer, SHORT_TURNS), seed=4, timeout_s=1.0)
    assert (traj.status, traj.truncation) == ("infra_error", "timeout")
    assert "deadline" in traj.error and traj.info["duration_s"] < 5
    assert not traj.learnable and traj.num_turns == 1  # the step taken before the hang is kept


async def test_slow_env_creation_counts_against_the_deadline(policy, renderer):
    async def booting_env():
        await asyncio.sleep(30)  # e.g. a sandbox that never comes up
        return MazeEnv()

    traj = await run_actor(booting_env, TokenActor(policy, renderer, SHORT_TURNS), seed=4, timeout_s=0.3)
    assert (traj.status, traj.truncation, traj.num_turns) == ("infra_error", "timeout", 0)


class BrokenSandboxMaze(MazeEnv):
    async def _areset(self, task):
        raise SandboxUnavailable("docker engine is down")


class FailingPolicy(RecordingPolicy):
    async def generate(self, prompt_token_ids, sampling):
        raise PolicyBackendError("connection reset by the inference server")


async def test_infra_failures_are_typed_and_never_scored(policy, renderer):
    traj = await run_actor(BrokenSandboxMaze, TokenActor(policy, renderer, SHORT_TURNS), seed=5)
    assert traj.status == "infra_error" and traj.truncation is None
    assert traj.error == "SandboxUnavailable: docker engine is down"
    backend = await run_actor(maze(), TokenActor(FailingPolicy(policy), renderer, SHORT_TURNS), seed=5)
    assert backend.status == "infra_error" and "connection reset" in backend.error


class BuggyMaze(MazeEnv):
    def _step(self, action):
        raise KeyError("bug in the env")


async def test_unexpected_errors_fail_by_default_and_are_masked_when_not_strict(policy, renderer):
    with pytest.raises(KeyError):
        await run_actor(BuggyMaze, TokenActor(policy, renderer, SHORT_TURNS), seed=6)
    traj = await run_actor(BuggyMaze, TokenActor(policy, renderer, SHORT_TURNS), seed=6, strict=False)
    assert traj.status == "infra_error" and traj.error.startswith("KeyError")
