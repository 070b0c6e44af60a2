"""Eval scores count the agent's own crashes as failures (not as infra errors left out).

A scripted agent solves 3 CodeMath tasks and calls ``os._exit`` on 3 others: the true success
rate is 3/6 = 0.5 over 6 scored episodes (before the fix: 1.000 over 3 scored).
"""

import asyncio

import pytest

import agentrl
from agentrl.env import OracleAgent, aplay_episode
from agentrl.eval.metrics import compute_metrics
from agentrl.eval.runner import AgentSpec, EvalSettings, evaluate

CRASH = "```python\nimport os\nos._exit(0)\n```"


class CrashingAgent:
    """Runs ``os._exit(0)`` on every turn: its code kills its own interpreter."""

    def act(self, observation: str) -> str:
        return CRASH


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_an_agent_that_crashes_its_kernel_on_half_the_tasks_scores_half(tmp_path, backend):
    if backend == "docker":
        from tests.code_interpreter.conftest import docker_skip_reason

        if docker_skip_reason() is not None:
            pytest.skip(docker_skip_reason())
    options = {"backend": backend, "per_family": 100, "families": ["chain_sum"], "max_turns": 3}
    settings = EvalSettings(env_id="agentrl/CodeMath-v0", agent=AgentSpec(kind="oracle"), max_tasks=6, env_options=options)
    tasks = agentrl.make(settings.env_id, **options).tasks.split("test").ids()[:6]
    crash_on = set(tasks[3:])

    async def play(task_id: str, seed: int):
        env = agentrl.make(settings.env_id, **options)
        try:
            agent = CrashingAgent() if task_id in crash_on else OracleAgent(env)
            return await aplay_episode(env, agent, seed=seed, task_id=task_id)
        finally:
            await env.aclose()

    episodes = asyncio.run(evaluate(settings, play, tmp_path, concurrency=2, show_progress=False))
    metrics = compute_metrics(episodes)
    assert (metrics.episodes, metrics.scored_episodes, metrics.infra_errors) == (6, 6, 0)
    assert metrics.success_rate == 0.5  # 3 / 6
    crashed = [t for t in episodes if t.task_id in crash_on]
    assert all(t.status == "truncated" and t.final_reward == 0.0 and t.num_turns == 3 for t in crashed)
    how = "(exit code 0)" if backend == "local" else "("  # an image built before exit codes: "unknown"
    assert all(f"your code crashed the Python interpreter {how}" in t.steps[1].observation for t in crashed)
