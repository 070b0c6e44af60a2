"""CodeMath episodes through the rollout engine's episode runner, with a real tiny model."""


import numpy as np

import agentrl
from agentrl.algos.batch import StepBatch
from agentrl.algos.grpo import GRPOConfig, grpo
from agentrl.policy import HFPolicy, SamplingParams
from agentrl.policy.base import Completion
from agentrl.policy.tiny import build_tiny_model
from agentrl.rollout import TokenActor, run_actor


class ScriptedTokens:
    """A policy that 'samples' fixed texts as real token ids of the tiny tokenizer."""

    policy_version, max_context_tokens = 0, None

    def __init__(self, tokenizer, texts):
        self.tokenizer, self.texts = tokenizer, list(texts)

    async def generate(self, prompt_token_ids, sampling):
        ids = self.tokenizer.encode(self.texts.pop(0), add_special_tokens=False)
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop")


def code_math(**options):
    return lambda: agentrl.make("agentrl/CodeMath-v0", per_family=20, **options)


def chain_sum_task():
    env = code_math()()
    task = next(t for t in env.tasks if t.data["family"] == "chain_sum")
    return task.id, task.data["expression"], task.data["answer"]


async def test_tiny_model_episode_is_recorded_with_error_observations(tokenizer, renderer):
    model = build_tiny_model(tokenizer, hidden_size=64, intermediate_size=128)
    policy = HFPolicy(model, tokenizer, max_batch_size=2, max_wait_s=0.01)
    sampling = SamplingParams(max_tokens=16, stop=("e", "a", " "))
    actor = TokenActor(policy, renderer, sampling)
    traj = await run_actor(code_math(max_invalid_actions=3), actor, seed=3, strict=True)
    assert (traj.status, traj.truncation, traj.num_turns) == ("truncated", "invalid_actions", 3)
    assert traj.env_id == "agentrl/CodeMath-v0" and traj.final_reward == 0.0
    assert all(not s.valid_action and s.logprobs for s in traj.steps)


async def test_scripted_tokens_solve_a_task_through_the_kernel(tokenizer, renderer):
    task_id, expression, gold = chain_sum_task()
    texts = [f"```python\nanswer = {expression}\n```", "```python\nprint(answer)\n```", f"\\boxed{{{gold}}}"]
    actor = TokenActor(ScriptedTokens(tokenizer, texts), renderer, SamplingParams(max_tokens=64))
    traj = await run_actor(code_math(), actor, seed=0, task_id=task_id, strict=True)
    assert (traj.status, traj.success, traj.final_reward) == ("ok", True, 1.0)
    assert [s.tool_calls for s in traj.steps] == [1, 1, 0]
    assert traj.steps[2].observation == f"<interpreter>\n{gold}\n</interpreter>"  # what the agent saw


async def test_code_that_crashes_its_sandbox_is_learnable_with_the_failure_reward(tokenizer, renderer):
    """Training: a rollout whose code killed its kernel is a scored failure, not masked."""
    task_id, expression, gold = chain_sum_task()
    solved = [f"```python\nanswer = {expression}\n```", "```python\nprint(answer)\n```", f"\\boxed{{{gold}}}"]
    crashed = ["```python\nimport os\nos._exit(3)\n```", "```python\nimport os\nos._exit(3)\n```"]
    group = []
    for texts in (solved, crashed):
        actor = TokenActor(ScriptedTokens(tokenizer, texts), renderer, SamplingParams(max_tokens=64))
        group.append(
            await run_actor(
                code_math(max_turns=2 if texts is crashed else 3), actor,
                seed=0, task_id=task_id, group_id="g", strict=True,
            )
        )  # fmt: skip
    crash = group[1]
    assert (crash.status, crash.truncation, crash.learnable, crash.final_reward) == ("truncated", "max_turns", True, 0.0)
    assert "your code crashed the Python interpreter (exit code 3)" in crash.steps[1].observation
    batch = StepBatch.from_trajectories(group)
    assert batch.episode_valid.tolist() == [True, True]
    advantages = grpo(batch, GRPOConfig())
    # GRPO over the group {1, 0}: mean 0.5, so the crash's advantage is negative and the solve's
    # positive, equal and opposite (whatever the std normalisation).
    solve_adv, crash_adv = advantages[: len(group[0].steps)], advantages[len(group[0].steps) :]
    assert np.all(crash_adv < 0) and np.all(solve_adv > 0)
    assert np.allclose(solve_adv[0], -crash_adv[0])
