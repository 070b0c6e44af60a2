"""Scripted agents (oracle, random) and a loop that plays one episode with any of them.

An agent is anything with ``act(observation) -> str``. The oracle asks the env for its
``oracle_action()`` (every bundled env ships one: the proof that the env and its reward are
right); the random agent asks for ``random_action(rng)``. Policies backed by language models
live in :mod:`agentrl.policy` and run through the rollout engine instead.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from agentrl.env.base import TextEnv
from agentrl.types import StepRecord, Trajectory


class Agent(Protocol):
    def act(self, observation: str) -> str: ...


class OracleAgent:
    """Takes the env's scripted optimal action."""

    def __init__(self, env: TextEnv):
        self.env = env

    def act(self, observation: str) -> str:
        return self.env.oracle_action()


class RandomAgent:
    """Takes the env's random action (a plausible command with random arguments)."""

    def __init__(self, env: TextEnv, seed: int | None = None):
        self.env = env
        self.rng = np.random.default_rng(seed)

    def act(self, observation: str) -> str:
        return self.env.random_action(self.rng)


AGENTS = {"oracle": OracleAgent, "random": RandomAgent}


def make_agent(name: str, env: TextEnv, seed: int | None = None) -> Agent:
    if name == "oracle":
        return OracleAgent(env)
    if name == "random":
        return RandomAgent(env, seed)
    raise ValueError(f"unknown scripted agent {name!r}; choose one of {', '.join(AGENTS)}")


async def aplay_episode(
    env: TextEnv, agent: Agent, seed: int | None = None, task_id: str | None = None
) -> Trajectory:
    """Run one episode of a scripted agent on the env's async API and record it."""
    observation, info = await env.areset(seed=seed, options={"task_id": task_id} if task_id else None)
    trajectory = Trajectory(env_id=env.spec.id if env.spec else type(env).__name__, task_id=info["task_id"], seed=seed)
    state_key = info["state_key"]
    while True:
        action = agent.act(observation)
        next_observation, reward, terminated, truncated, info = await env.astep(action)
        trajectory.steps.append(
            StepRecord(
                index=len(trajectory.steps),
                observation=observation,
                action=action,
                reward=reward,
                tool_calls=info["tool_calls"],
                state_key=state_key,
                valid_action=info["valid_action"],
                info={"error": info["error"]} if info["error"] else {},
            )
        )
        observation, state_key = next_observation, info["state_key"]
        if terminated or truncated:
            trajectory.final_reward = sum(s.reward for s in trajectory.steps)
            trajectory.success = bool(info["success"])
            if truncated:
                trajectory.status = "truncated"
                trajectory.truncation = info.get("truncation")
            return trajectory
