"""Scripted agents (oracle, random), and :func:`aplay_episode` to play one episode with one.

An agent is anything with ``act(observation) -> str``. The oracle asks the env for its
``oracle_action()`` (every bundled env ships one: the proof that the env and its reward are
right); the random agent asks for ``random_action(rng)``. Episodes are played by the one turn
loop of :mod:`agentrl.rollout.episode` (through a
:class:`~agentrl.rollout.episode.ScriptedActor`), like model policies.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from agentrl.env.base import TextEnv
from agentrl.types import Trajectory


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
        self.rng = np.random.default_rng(None if seed is None else (seed, 1))  # not the env's own stream of that seed

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
    """Play one episode of a scripted agent on ``env`` (the env's async API) and record it."""
    from agentrl.rollout.episode import ScriptedActor, finalize, play  # the rollout layer builds on env

    trajectory = Trajectory(env_id=env.spec.id if env.spec else type(env).__name__, task_id=task_id or "", seed=seed)
    return finalize(await play(env, ScriptedActor(lambda _env: agent), trajectory))
