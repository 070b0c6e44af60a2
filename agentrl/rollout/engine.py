"""The async rollout engine: many episodes in flight, admitted and handed on by group.

* **Concurrency.** At most ``max_concurrency`` episodes run at once (env creation included);
  while one waits on a tool, others generate — the policy batches whatever is pending.
* **Groups.** A group is ``group_size`` episodes of one task from one initial state (same
  ``seed``, same ``task_id``). It is handed on only when every member is done; members that
  keep failing stay in the group as ``infra_error`` (masked downstream), so long or failing
  episodes are never swapped for short ones.
* **Deadline and retries.** Each attempt runs under one deadline (:func:`run_actor`); an
  attempt that ends in ``infra_error`` (timeout, sandbox or backend failure) is retried with the
  same seed and task, up to ``max_attempts`` in all. ``info["attempts"]`` records how many ran.
* **Staleness** (:meth:`RolloutEngine.stream`). Capacity control, not dropping: with
  ``groups_per_step`` groups consumed per trainer step and a bound ``max_staleness``, a new
  group starts only while ``started < (Δversion + max_staleness + 1) · groups_per_step``
  (Δversion = policy versions since the stream began). A group started at version v is thus
  consumed at version ≤ v + max_staleness when the trainer consumes groups in order (AReaL's
  rule); each group reports its actual staleness, measured from its oldest step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Iterable

from tqdm.auto import tqdm

import agentrl
from agentrl.policy.base import Policy
from agentrl.policy.render import ChatRenderer
from agentrl.rollout.config import RolloutConfig, TreeConfig
from agentrl.rollout.episode import EnvFactory, TokenActor, derive_seed, run_actor
from agentrl.rollout.tree import TreeBuilder
from agentrl.types import RolloutTree, Trajectory, new_id


@dataclasses.dataclass
class GroupSpec:
    """One group to roll out: the shared episode seed and (optionally) the task."""

    seed: int
    task_id: str | None = None
    group_id: str = dataclasses.field(default_factory=new_id)


@dataclasses.dataclass
class Group:
    """The finished members of one group (trajectories, or trees for tree rollouts)."""

    spec: GroupSpec
    members: list[Trajectory] | list[RolloutTree]
    staleness: int | None = None  # policy versions between the oldest step and hand-over

    @property
    def group_id(self) -> str:
        return self.spec.group_id

    @property
    def oldest_policy_version(self) -> int | None:
        versions = [
            step.policy_version
            for member in self.members
            for step in (member.steps if isinstance(member, Trajectory) else (n.step for n in member.nodes))
            if step.policy_version is not None
        ]
        return min(versions) if versions else None


def group_specs(num_groups: int, seed: int = 0, task_ids: Iterable[str] | None = None) -> list[GroupSpec]:
    """``num_groups`` specs with distinct seeds drawn from ``seed`` (tasks from ``task_ids`` in
    order when given; otherwise each env picks its task from the seed)."""
    rng = random.Random(seed)
    tasks = list(task_ids) if task_ids is not None else []
    if tasks and len(tasks) < num_groups:
        raise ValueError(f"{num_groups} groups but only {len(tasks)} task ids")
    return [
        GroupSpec(seed=rng.randrange(2**31 - 1), task_id=tasks[i] if tasks else None)
        for i in range(num_groups)
    ]


class RolloutEngine:
    """Runs episodes of ``env`` (an env id or a factory) with ``policy`` through ``renderer``.

    ``progress=True`` shows a progress bar of finished episodes (for the CLI).
    """

    def __init__(
        self,
        env: str | EnvFactory,
        policy: Policy,
        renderer: ChatRenderer,
        config: RolloutConfig | None = None,
        *,
        progress: bool = False,
    ):
        self.env_factory: EnvFactory = (lambda: agentrl.make(env)) if isinstance(env, str) else env
        self.policy = policy
        self.renderer = renderer
        self.config = config or RolloutConfig()
        self.progress = progress
        self._slots = asyncio.Semaphore(self.config.max_concurrency)
        self._bar = None
        self.stats = {"episodes": 0, "attempts": 0, "infra_errors": 0, "retries": 0}

    def actor(self) -> TokenActor:
        """The actor every episode and tree branch of this engine samples with."""
        c = self.config
        return TokenActor(self.policy, self.renderer, c.sampling, c.max_context_tokens)

    # ------------------------------------------------------------------ episodes
    async def run_episode(self, spec: GroupSpec, member: int = 0) -> Trajectory:
        """One group member: attempts under the concurrency cap until not ``infra_error``.

        Each member samples with its own seed, derived from the engine seed, the group's episode
        seed, the member index and the attempt, so a rollout is reproducible whatever the batching
        (same config → same tokens) while members of a group still explore differently."""
        c = self.config
        for attempt in range(1, c.max_attempts + 1):
            async with self._slots:
                trajectory = await self.run_attempt(spec, member, attempt)
            self.stats["attempts"] += 1
            trajectory.info["attempts"] = attempt
            if trajectory.status != "infra_error":
                break
            self.stats["infra_errors"] += 1
            self.stats["retries"] += attempt < c.max_attempts
        self.stats["episodes"] += 1
        if self._bar is not None:
            self._bar.update(1)
        return trajectory

    def attempt_args(self, spec: GroupSpec, member: int, attempt: int) -> dict:
        """:func:`run_actor`'s keyword arguments for one attempt of one group member."""
        c = self.config
        return {
            "seed": spec.seed, "task_id": spec.task_id, "group_id": spec.group_id,
            "sampling_seed": derive_seed(c.seed, spec.seed, member, attempt), "timeout_s": c.episode_timeout_s,
            "strict": c.strict,
        }

    async def run_attempt(self, spec: GroupSpec, member: int, attempt: int) -> Trajectory:
        """One attempt in this process (a cluster engine runs it on an env worker instead)."""
        return await run_actor(self.env_factory, self.actor(), **self.attempt_args(spec, member, attempt))

    async def run_group(self, spec: GroupSpec) -> Group:
        members = await asyncio.gather(*(self.run_episode(spec, i) for i in range(self.config.group_size)))
        return self._hand_over(spec, list(members))

    async def run_tree_group(self, spec: GroupSpec, tree: TreeConfig) -> Group:
        """``tree.num_trees`` Tree-GRPO trees for one task: one group of :class:`RolloutTree`."""
        c = self.config
        rng = random.Random(f"{c.seed}:{spec.seed}")
        builders = [
            TreeBuilder(
                self, spec, tree, random.Random(rng.random()), derive_seed(c.seed, spec.seed, "tree", t)
            )
            for t in range(tree.num_trees)
        ]
        trees = await asyncio.gather(*(b.grow() for b in builders))
        if self._bar is not None:
            self._bar.update(len(trees))
        return self._hand_over(spec, list(trees))

    # ------------------------------------------------------------------ batches of groups
    async def run(self, specs: list[GroupSpec] | int) -> list[Group]:
        """Roll out every group (``specs`` or a number of groups) and return them in order."""
        specs = group_specs(specs, self.config.seed) if isinstance(specs, int) else specs
        self._bar = tqdm(
            total=len(specs) * self.config.group_size, desc="episodes", unit="ep", disable=not self.progress
        )
        try:
            return list(await asyncio.gather(*(self.run_group(s) for s in specs)))
        finally:
            self._bar.close()
            self._bar = None

    async def run_trees(self, specs: list[GroupSpec] | int, tree: TreeConfig | None = None) -> list[Group]:
        """Tree rollouts for every group (see :mod:`agentrl.rollout.tree`), in order."""
        tree = tree or TreeConfig()
        specs = group_specs(specs, self.config.seed) if isinstance(specs, int) else specs
        self._bar = tqdm(
            total=len(specs) * tree.num_trees, desc="trees", unit="tree", disable=not self.progress
        )
        try:
            return list(await asyncio.gather(*(self.run_tree_group(s, tree) for s in specs)))
        finally:
            self._bar.close()
            self._bar = None

    async def stream(self, specs: Iterable[GroupSpec], *, groups_per_step: int = 1) -> AsyncIterator[Group]:
        """Yield groups as they complete, admitting new ones under the staleness bound.

        Admission also keeps at most ``ceil(max_concurrency / group_size) + 1`` groups in flight,
        enough to keep every slot busy with one group queued behind.
        """
        if groups_per_step < 1:
            raise ValueError("groups_per_step must be >= 1")
        c = self.config
        max_groups = -(-c.max_concurrency // c.group_size) + 1
        start_version = self.policy.policy_version
        pending = iter(specs)
        exhausted = False
        started = 0
        running: set[asyncio.Task] = set()
        try:
            while True:
                while (
                    not exhausted
                    and len(running) < max_groups
                    and self._may_admit(started, start_version, groups_per_step)
                ):
                    spec = next(pending, None)
                    if spec is None:
                        exhausted = True
                        break
                    running.add(asyncio.ensure_future(self.run_group(spec)))
                    started += 1
                if not running:
                    if exhausted:
                        return
                    await asyncio.sleep(0.01)  # blocked by staleness: wait for the trainer's next version
                    continue
                done, running = await asyncio.wait(running, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    group = task.result()
                    group.staleness = self._staleness(group)
                    yield group
        finally:
            for task in running:
                task.cancel()

    # ------------------------------------------------------------------ internals
    def _may_admit(self, started: int, start_version: int, groups_per_step: int) -> bool:
        bound = self.config.max_staleness
        if bound is None:
            return True
        versions = self.policy.policy_version - start_version
        return started < (versions + bound + 1) * groups_per_step

    def _staleness(self, group: Group) -> int | None:
        oldest = group.oldest_policy_version
        return None if oldest is None else self.policy.policy_version - oldest

    def _hand_over(self, spec: GroupSpec, members: list) -> Group:
        group = Group(spec=spec, members=members)
        group.staleness = self._staleness(group)
        return group
