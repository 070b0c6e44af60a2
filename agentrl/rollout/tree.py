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

Every branch is played by the same turn loop as a chain
(:func:`agentrl.rollout.episode.play_turns`: step errors, truncation reasons, per-turn seeds).
**Seeds:** tree ``t`` of a group samples from ``derive_seed(engine seed, episode seed, t)``;
branch ``b`` of the tree (0 = the first chain, then in the order branches start) from
``derive_seed(tree seed, b)``, and its turn at depth d from ``turn_seed(branch seed, d)``. So
siblings expanded from one node sample differently even on a seeded backend, and the same
config grows the same tree.

Branching goes through ``env.afork()``: after every non-terminal step the builder keeps a fork of
the env (and of the actor session) as that node's snapshot; a branch forks the snapshot again,
so a node can be expanded in several rounds. Envs whose state is costly to copy should override
``afork`` with a cheap snapshot (the default replays the episode's actions).

Budgets per tree: once ``max_generated_tokens`` or ``max_tool_calls`` is reached, no new branch
starts (running ones finish). ``tree.info`` records ``generated_tokens``, ``tool_calls``,
``forks``, ``branches`` and ``segment_breaks``. A branch that fails with an infrastructure error
or passes its deadline ends in a leaf with ``status="infra_error"`` (not retried); any other
exception fails the run unless ``strict`` is off (then it is logged and treated the same way).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import TYPE_CHECKING

from agentrl.env.base import TextEnv
from agentrl.rollout.config import TreeConfig
from agentrl.rollout.episode import (
    ActorSession,
    Ending,
    classify,
    close_env,
    derive_seed,
    make_env,
    play_turns,
)
from agentrl.types import RolloutTree, StepRecord, TreeLeaf, TreeNode

if TYPE_CHECKING:
    from agentrl.rollout.engine import GroupSpec, RolloutEngine

__all__ = ["TreeBuilder", "TreeConfig"]


@dataclasses.dataclass
class _Cursor:
    """Where a running branch is: the last node it added (or its start) and whether it ended."""

    node: int | None
    ended: bool = False


@dataclasses.dataclass
class _Snapshot:
    """Everything needed to continue from the state after a node."""

    env: TextEnv
    session: ActorSession
    observation: str
    state_key: str | None
    depth: int


class TreeBuilder:
    """Grows one tree for ``spec`` with the engine's env factory and actor; ``seed`` is the
    tree's sampling seed, ``rng`` draws the expansion points."""

    def __init__(
        self, engine: RolloutEngine, spec: GroupSpec, config: TreeConfig, rng: random.Random, seed: int
    ):
        self.engine = engine
        self.spec = spec
        self.config = config
        self.rng = rng
        self.seed = seed
        self.actor = engine.actor()
        self.tree = RolloutTree(task_id=spec.task_id or "", group_id=spec.group_id, seed=spec.seed)
        self.snapshots: dict[int, _Snapshot] = {}
        self.counts = {"forks": 0, "branches": 0, "segment_breaks": 0}

    async def grow(self) -> RolloutTree:
        try:
            await self._guarded(0, None)
            for _ in range(self.config.rounds):
                eligible = sorted(self.snapshots)
                if not eligible or self._over_budget():
                    break
                picks = self.rng.sample(eligible, min(self.config.expansions_per_round, len(eligible)))
                first = self.counts["branches"] + 1
                self.counts["branches"] += len(picks)
                await asyncio.gather(*(self._guarded(first + i, node) for i, node in enumerate(picks)))
        finally:
            await asyncio.gather(*(close_env(s.env) for s in self.snapshots.values()))
            self.snapshots.clear()
        self.tree.info.update(self.counts, **self._spent())
        self.tree.take_columns()  # now that the tree is finished, not when the batch is built
        return self.tree

    async def _guarded(self, branch: int, start: int | None) -> None:
        """Run one branch under a slot and the deadline; a failure ends it in an infra_error leaf."""
        engine = self.engine
        cursor = _Cursor(node=start)
        deadline = asyncio.timeout(engine.config.episode_timeout_s)
        try:
            async with engine._slots, deadline:
                await self._branch(branch, cursor)
        except Exception as exc:  # noqa: BLE001 - classified: infra recorded, a bug re-raised under strict
            timed_out = deadline.expired()
            error = (
                "TimeoutError: branch deadline passed"
                if timed_out
                else classify(exc, engine.config.strict, "tree branch")
            )
            self.tree.info.setdefault("errors", []).append(error)
            if cursor.node is not None and not cursor.ended:
                self.tree.leaves.append(
                    TreeLeaf(
                        node_id=cursor.node, status="infra_error", truncation="timeout" if timed_out else None
                    )
                )

    async def _branch(self, branch: int, cursor: _Cursor) -> None:
        """Branch ``branch``: the first chain (``cursor.node`` None) or a continuation from a snapshot."""
        if cursor.node is None:
            env = await make_env(self.engine.env_factory)
        else:
            snap = self.snapshots[cursor.node]
            env = await snap.env.afork()
            self.counts["forks"] += 1
        try:
            if cursor.node is None:
                self.tree.env_id = env.spec.id if env.spec is not None else type(env).__name__
                options = {"task_id": self.spec.task_id} if self.spec.task_id else None
                observation, info = await env.areset(seed=self.spec.seed, options=options)
                self.tree.task_id = info["task_id"]
                session, state_key, depth = self.actor.begin(env, observation), info["state_key"], 0
            else:
                session, observation, state_key, depth = (
                    snap.session.fork(env),
                    snap.observation,
                    snap.state_key,
                    snap.depth,
                )
            breaks = session.segment_breaks

            def record(step: StepRecord) -> None:
                node_id = len(self.tree.nodes)
                self.tree.nodes.append(TreeNode(node_id=node_id, parent_id=cursor.node, step=step))
                cursor.node = node_id

            async def branch_point(step: StepRecord, observation: str, state_key: str | None) -> None:
                fork = await env.afork()
                self.counts["forks"] += 1
                self.snapshots[cursor.node] = _Snapshot(
                    fork, session.fork(fork), observation, state_key, step.index + 1
                )

            try:
                ending = await play_turns(
                    env,
                    session,
                    observation,
                    state_key,
                    depth=depth,
                    seed=derive_seed(self.seed, branch),
                    record=record,
                    branch_point=branch_point,
                )
            finally:
                self.counts["segment_breaks"] += session.segment_breaks - breaks
            self._leaf(cursor, ending)
        finally:
            await close_env(env)

    def _leaf(self, cursor: _Cursor, ending: Ending) -> None:
        cursor.ended = True
        if cursor.node is None:  # the first chain generated nothing (its prompt fills the context)
            return
        reward = sum(n.step.reward for n in self.tree.path_to(cursor.node))
        self.tree.leaves.append(
            TreeLeaf(
                node_id=cursor.node,
                final_reward=reward,
                success=ending.success,
                status=ending.status,
                truncation=ending.truncation,
            )
        )

    def _spent(self) -> dict[str, int]:
        steps = [n.step for n in self.tree.nodes]
        return {
            "generated_tokens": sum(len(s.completion_token_ids) for s in steps),
            "tool_calls": sum(s.tool_calls for s in steps),
        }

    def _over_budget(self) -> bool:
        c, spent = self.config, self._spent()
        return (
            c.max_generated_tokens is not None and spent["generated_tokens"] >= c.max_generated_tokens
        ) or (c.max_tool_calls is not None and spent["tool_calls"] >= c.max_tool_calls)
