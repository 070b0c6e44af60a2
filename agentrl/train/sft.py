"""Supervised warm start on an env's oracle demonstrations.

RL from a random-init model never sees a success, so every group's advantage is 0. The warm start
plays the env's scripted oracle (``env.oracle_action()``) through the *same* episode loop, chat
renderer and context mode the RL rollouts use (:func:`agentrl.rollout.episode.play`), by wrapping
the oracle as a :class:`~agentrl.policy.base.Policy` that "samples" the oracle's action text
followed by the template's end-of-turn token. The recorded steps then become training rows with
:class:`agentrl.rollout.batch.RolloutBatch`, exactly like RL data, and the loss is the token-mean
negative log-likelihood of the policy tokens::

    L_SFT = − Σ_t m_t · log π_θ(a_t | context) / Σ_t m_t
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from agentrl.env.base import TextEnv
from agentrl.policy.base import Completion, SamplingParams
from agentrl.policy.render import ChatRenderer
from agentrl.rollout.batch import RolloutBatch, TokenRow
from agentrl.rollout.episode import TokenActor, finalize, play
from agentrl.train.learner import Learner
from agentrl.types import Trajectory

Demonstrator = Literal["oracle", "random"]


class OraclePolicy:
    """A :class:`~agentrl.policy.base.Policy` that answers with ``env.oracle_action()``.

    ``demonstrator="random"`` answers with ``env.random_action(rng)`` instead (seeded by
    ``seed``): a warm start that teaches the action format but not which action pays, so that
    RL, not imitation, has to find the answer (the bandit checks in tests/train/test_learning.py).
    """

    def __init__(self, env: TextEnv, renderer: ChatRenderer, demonstrator: Demonstrator = "oracle", seed: int = 0):
        self.env = env
        self.renderer = renderer
        self.demonstrator = demonstrator
        # Not default_rng(seed): the env draws its task from that same stream, which would make the
        # "random" action a function of the task (measured: the wrong door in every room).
        self.rng = np.random.default_rng((seed, 1))

    @property
    def policy_version(self) -> int:
        return 0

    @property
    def max_context_tokens(self) -> int | None:
        return None

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        action = self.env.oracle_action() if self.demonstrator == "oracle" else self.env.random_action(self.rng)
        ids = self.renderer.encode(action) + list(self.renderer.stop_token_ids[:1])
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop")


async def oracle_demonstrations(
    env_factory: Callable[[], TextEnv], renderer: ChatRenderer, episodes: int, seed: int, max_tokens: int = 64,
    demonstrator: Demonstrator = "oracle",
) -> list[Trajectory]:
    """``episodes`` oracle episodes (seeds ``seed``, ``seed + 1``, …) recorded as RL would record them,
    over the tasks of :func:`demonstration_tasks`."""
    out = []
    tasks: list[str] = []
    for i in range(episodes):
        env = env_factory()
        try:
            tasks = tasks or demonstration_tasks(env, episodes, seed)
            trajectory = Trajectory(task_id=tasks[i], seed=seed + i)
            actor = TokenActor(OraclePolicy(env, renderer, demonstrator, seed + i), renderer, SamplingParams(max_tokens=max_tokens))
            await play(env, actor, trajectory)
            out.append(finalize(trajectory))
        finally:
            await env.aclose()
            env.close()
    return out


def demonstration_tasks(env: TextEnv, episodes: int, seed: int) -> list[str]:
    """The task of each demonstration: a seeded shuffle of the split's tasks, repeated, so every
    task gets ``episodes // n`` or one more (and no task twice when there are more tasks than
    episodes). Tasks drawn by episode seed left the default maze's hardest task 4 demos of 64, and
    a warm start that never solves a task gives RL no success to learn from there. An env that
    cannot list its tasks (``task_ids()`` None: a ``RemoteEnv``'s live on its server) draws them by
    seed ("")."""
    ids = env.task_ids()
    if not ids:  # (None, or an empty split: reset names it)
        return [""] * episodes
    order = np.random.default_rng((seed, 2)).permutation(len(ids))
    return [ids[order[i % len(ids)]] for i in range(episodes)]


def demonstration_rows(trajectories: list[Trajectory]) -> list[TokenRow]:
    return RolloutBatch.from_members(trajectories).sample_rows()


def nll(logp, entropy, batch, weights, ref):
    """Token-mean negative log-likelihood of the policy tokens (an optimizer-step objective)."""
    return -(weights * logp).sum(), {}


def batches(num_rows: int, batch_rows: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``steps`` batches of row indices: shuffled passes over the rows, cut into ``batch_rows``.

    A pass's last, short batch is topped up from the next pass, so every batch has
    ``min(batch_rows, num_rows)`` rows and every row is seen equally often (±1).
    """
    size = min(batch_rows, num_rows)
    stream = np.empty(0, dtype=np.int64)
    out = []
    for _ in range(steps):
        while len(stream) < size:
            stream = np.concatenate([stream, rng.permutation(num_rows)])
        out.append(stream[:size])
        stream = stream[size:]
    return out


def run_sft(
    learner: Learner,
    env_factory: Callable[[], TextEnv],
    renderer: ChatRenderer,
    *,
    episodes: int,
    steps: int,
    batch_rows: int,
    lr: float,
    seed: int,
    demonstrator: Demonstrator = "oracle",
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Warm-start ``learner.model`` with ``steps`` optimizer steps of token-mean NLL on oracle
    demonstrations, with its own AdamW (lr ``lr``); returns the loss of every step.

    Sized in optimizer steps, not passes over rows: a row is a turn in window mode but a whole
    episode in full-context mode, so a pass count would give full context a third of the steps.
    The learner's RL optimizer is left untouched (its moments start fresh for RL).
    """
    demos = asyncio.run(oracle_demonstrations(env_factory, renderer, episodes, seed, demonstrator=demonstrator))
    rows = demonstration_rows(demos)
    params = [p for p in learner.model.parameters() if p.requires_grad]
    rl_optimizer = learner.optimizer
    learner.optimizer = torch.optim.AdamW(params, lr=lr)
    losses = []
    try:
        for step, index in enumerate(batches(len(rows), batch_rows, steps, np.random.default_rng(seed))):
            batch = [rows[i] for i in index]
            losses.append(learner.optimizer_step(batch, nll, with_entropy=False, scheduler=False)["loss"])
            if on_step is not None:
                on_step(step, losses[-1])
    finally:
        learner.optimizer = rl_optimizer
    return losses
