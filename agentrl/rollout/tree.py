"""Tree rollouts (Tree-GRPO): trajectories that share prefixes, grown by forking envs.

For one task (one seed), ``num_trees`` (M) trees are grown independently; together they are one
group. Each tree:

1. starts with one full episode (a chain of nodes; a node is one agent step);
2. for each of ``rounds`` (L) expansion rounds, draws ``expansions_per_round`` (N) distinct
   nodes uniformly from the tree's *non-terminal* nodes (steps after which the episode went on)
   and grows a new branch from each: the branch shares the path up to that node and continues
   with fresh samples from the state after it, until its episode ends.

A tree of a chain of length T with L·N expansions holds ``1 + L·N`` episodes but generates only
the branches' suffix tokens for the extra ones — the saving Tree-GRPO exploits.

Branching goes through ``env.afork()``: after every non-terminal step the builder keeps a fork of
the env (and a copy of the token stream) as that node's snapshot; a branch forks the snapshot
again, so a node can be expanded in several rounds. Envs whose state is costly to copy should
override ``afork`` with a cheap snapshot (the default replays the episode's actions).

Budgets per tree: once ``max_generated_tokens`` or ``max_tool_calls`` is reached, no new branch
starts (running ones finish). ``tree.info`` records ``generated_tokens``, ``tool_calls``,
``forks``, ``branches`` and ``segment_breaks``. A branch that fails (timeout, sandbox or
backend error) ends in a leaf with ``status="infra_error"``; branches are not retried.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from agentrl.env.base import TextEnv
from agentrl.policy.render import Conversation
from agentrl.rollout.episode import INFRA_ERRORS, close_env, generate_step, make_env, stream_sampling
from agentrl.types import RolloutTree, TreeLeaf, TreeNode

if TYPE_CHECKING:
    from agentrl.rollout.engine import GroupSpec, RolloutEngine

log = logging.getLogger(__name__)


class TreeConfig(BaseModel):
    """Shape and budgets of tree rollouts (Tree-GRPO's M, L, N)."""

    model_config = ConfigDict(extra="forbid")

    num_trees: int = Field(default=4, ge=1, description="M: trees per task (one group).")
    rounds: int = Field(default=1, ge=0, description="L: expansion rounds per tree.")
    expansions_per_round: int = Field(default=2, ge=1, description="N: nodes expanded per round.")
    max_generated_tokens: int | None = Field(default=None, ge=1, description="Per-tree token budget.")
    max_tool_calls: int | None = Field(default=None, ge=0, description="Per-tree tool-call budget.")


@dataclasses.dataclass
class _Cursor:
    """Where a running branch is: the last node it added (or its start) and whether it ended."""

    node: int | None
    ended: bool = False


@dataclasses.dataclass
class _Snapshot:
    """Everything needed to continue from the state after a node."""

    env: TextEnv
    conversation: Conversation
    observation: str
    state_key: str | None
    path_reward: float
    depth: int


class TreeBuilder:
    """Grows one tree for ``spec`` with the engine's env factory, policy and renderer."""

    def __init__(self, engine: RolloutEngine, spec: GroupSpec, config: TreeConfig, rng: random.Random):
        self.engine = engine
        self.spec = spec
        self.config = config
        self.rng = rng
        self.sampling = stream_sampling(engine.renderer, engine.config.sampling)
        self.tree = RolloutTree(task_id=spec.task_id or "", group_id=spec.group_id, seed=spec.seed)
        self.snapshots: dict[int, _Snapshot] = {}
        self.counts = {"generated_tokens": 0, "tool_calls": 0, "forks": 0, "branches": 0, "segment_breaks": 0}

    async def grow(self) -> RolloutTree:
        try:
            await self._guarded(self._root, start=None)
            for _ in range(self.config.rounds):
                eligible = sorted(self.snapshots)
                if not eligible or self._over_budget():
                    break
                picks = self.rng.sample(eligible, min(self.config.expansions_per_round, len(eligible)))
                await asyncio.gather(*(self._guarded(self._brancher(n), start=n) for n in picks))
        finally:
            await asyncio.gather(*(close_env(s.env) for s in self.snapshots.values()))
            self.snapshots.clear()
        self.tree.info.update(self.counts)
        return self.tree

    # ------------------------------------------------------------------ branches
    async def _root(self, cursor: _Cursor) -> None:
        env = await make_env(self.engine.env_factory)
        try:
            self.tree.env_id = env.spec.id if env.spec is not None else type(env).__name__
            options = {"task_id": self.spec.task_id} if self.spec.task_id else None
            observation, info = await env.areset(seed=self.spec.seed, options=options)
            self.tree.task_id = info["task_id"]
            conversation = self.engine.renderer.start(env.system_prompt(), observation, env.tools)
            await self._extend(cursor, env, conversation, observation, info["state_key"], 0.0, 0)
        finally:
            await close_env(env)

    def _brancher(self, node_id: int) -> Callable[[_Cursor], Awaitable[None]]:
        return lambda cursor: self._branch(node_id, cursor)

    async def _branch(self, node_id: int, cursor: _Cursor) -> None:
        snap = self.snapshots[node_id]
        env = await snap.env.afork()
        self.counts["forks"] += 1
        self.counts["branches"] += 1
        try:
            await self._extend(
                cursor, env, snap.conversation.fork(), snap.observation, snap.state_key, snap.path_reward, snap.depth
            )
        finally:
            await close_env(env)

    async def _guarded(self, branch: Callable[[_Cursor], Awaitable[None]], start: int | None) -> None:
        """Run one branch under a slot and the deadline; a failure ends it in an infra_error leaf."""
        engine = self.engine
        cursor = _Cursor(node=start)
        deadline = asyncio.timeout(engine.config.episode_timeout_s)
        try:
            async with engine._slots, deadline:
                await branch(cursor)
        except Exception as exc:
            timed_out = deadline.expired()
            if not timed_out and not isinstance(exc, INFRA_ERRORS):
                if engine.config.strict:
                    raise
                log.error("tree branch failed with an unexpected error:\n%s", traceback.format_exc())
            error = "TimeoutError: branch deadline passed" if timed_out else f"{type(exc).__name__}: {exc}"
            self.tree.info.setdefault("errors", []).append(error)
            if cursor.node is not None and not cursor.ended:
                self.tree.leaves.append(
                    TreeLeaf(node_id=cursor.node, status="infra_error", truncation="timeout" if timed_out else None)
                )

    async def _extend(
        self,
        cursor: _Cursor,
        env: TextEnv,
        conversation: Conversation,
        observation: str,
        state_key: str | None,
        path_reward: float,
        depth: int,
    ) -> None:
        """Sample from the state after ``cursor.node`` until the episode ends, adding nodes."""
        engine = self.engine
        parent_id = cursor.node
        while True:
            step, truncation = await generate_step(
                engine.policy, conversation, self.sampling, engine.config.max_context_tokens
            )
            if step is None:
                if parent_id is not None:
                    self._leaf(cursor, parent_id, path_reward, False, "truncated", truncation)
                return
            node_id = len(self.tree.nodes)
            step.index, step.observation, step.state_key = depth, observation, state_key
            self.tree.nodes.append(TreeNode(node_id=node_id, parent_id=parent_id, step=step))
            cursor.node = node_id
            self.counts["generated_tokens"] += len(step.completion_token_ids)
            if truncation is not None:
                self._leaf(cursor, node_id, path_reward, False, "truncated", truncation)
                return
            observation, reward, terminated, truncated, info = await env.astep(step.action)
            step.reward, step.tool_calls, step.valid_action = float(reward), info["tool_calls"], info["valid_action"]
            self.counts["tool_calls"] += step.tool_calls
            path_reward += step.reward
            if terminated or truncated:
                status = "truncated" if truncated else "ok"
                self._leaf(cursor, node_id, path_reward, bool(info["success"]), status, info.get("truncation"))
                return
            breaks = conversation.segment_breaks
            conversation.add_observation(observation)
            self.counts["segment_breaks"] += conversation.segment_breaks - breaks
            state_key = info["state_key"]
            self.snapshots[node_id] = _Snapshot(
                await env.afork(), conversation.fork(), observation, state_key, path_reward, depth + 1
            )
            self.counts["forks"] += 1
            parent_id, depth = node_id, depth + 1

    # ------------------------------------------------------------------ helpers
    def _leaf(
        self, cursor: _Cursor, node_id: int, reward: float, success: bool, status: str, truncation: str | None
    ) -> None:
        cursor.ended = True
        self.tree.leaves.append(
            TreeLeaf(node_id=node_id, final_reward=reward, success=success, status=status, truncation=truncation)
        )

    def _over_budget(self) -> bool:
        c = self.config
        return (c.max_generated_tokens is not None and self.counts["generated_tokens"] >= c.max_generated_tokens) or (
            c.max_tool_calls is not None and self.counts["tool_calls"] >= c.max_tool_calls
        )
