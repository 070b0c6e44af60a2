"""The async rollout engine: many episodes in flight, admitted and handed on by group.

* **Concurrency.** At most ``max_concurrency`` episodes run at once (env creation included);
  while one waits on a tool, others generate — the policy batches whatever is pending.
* **Groups.** A group is ``group_size`` episodes of one task from one initial state (same
  ``seed``, same ``task_id``). It is handed on only when every member is done; members that
  keep failing stay in the group as ``infra_error`` (masked downstream), so long or failing
  episodes are never swapped for short ones.
* **Deadline and retries.** Each attempt runs under one deadline (:func:`run_actor`); an
  attempt that ends in ``infra_error`` (timeout, sandbox or backend failure) is retried with the
  same seed and task, up to ``max_attempts`` in all. ``info["attempts"]`` records how many ran;
  each failed attempt is logged (one warning: the episode, the attempt, the error's first line)
  and counted in ``stats["infra_errors"]`` (failed attempts; ``retries``: those run again).
* **Staleness** (:class:`GroupStream`, :meth:`RolloutEngine.stream`). Admission control, not
  dropping. With B = ``groups_per_step`` groups trained per policy version and the bound
  s = ``max_staleness``, a group admitted at version a must be trained at a version ≤ a + s (its
  *deadline*). A new group is admitted only while the groups not yet consumed fit before their
  deadlines: ``unconsumed < (s + 1)·B − taken`` (``taken``: groups already consumed at the
  current version) — AReaL's rule ``started < (v + s + 1)·B`` written in groups still owed, so it
  survives discarded groups and a resume. Hand-over prefers the first group to finish but never
  lets a slow group miss its deadline: a finished group is handed over only if, after it, every
  deadline can still be met with the picks left (for each j ≤ s, the groups due by version v + j
  fit in this step's remaining picks plus j·B); otherwise the stream waits for the groups that
  are due. So no group is trained more than s versions after it was admitted (its oldest token is
  younger still), and a long, slow group is waited for when it is due — never starved or dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Iterable, Iterator

from tqdm.auto import tqdm

import agentrl
from agentrl.policy.base import Policy
from agentrl.policy.render import ChatRenderer
from agentrl.rollout.config import RolloutConfig, TreeConfig
from agentrl.rollout.episode import EnvFactory, TokenActor, derive_seed, run_actor
from agentrl.rollout.tree import TreeBuilder
from agentrl.types import RolloutTree, StepRecord, Trajectory, TreeLeaf, new_id

log = logging.getLogger(__name__)


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

    def steps(self) -> Iterator[StepRecord]:
        """Every step of every member, each once: a chain's steps, a tree's nodes (a shared
        prefix once, not once per path)."""
        for member in self.members:
            yield from member.steps

    def episodes(self) -> Iterator[Trajectory | TreeLeaf]:
        """Every episode's outcome (``final_reward``, ``success``, ``status``): a chain itself,
        each leaf of a tree."""
        for member in self.members:
            yield from member.leaves if isinstance(member, RolloutTree) else (member,)

    @property
    def oldest_policy_version(self) -> int | None:
        return min((s.policy_version for s in self.steps() if s.policy_version is not None), default=None)


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
            log.warning(
                "episode seed %s task %s member %d: attempt %d/%d failed (%s): %s",
                spec.seed, trajectory.task_id or spec.task_id, member, attempt, c.max_attempts,
                "retrying" if attempt < c.max_attempts else "masked as infra_error",
                (trajectory.error or "no error recorded").splitlines()[0],
            )
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

    def open_stream(
        self, specs: Iterable[GroupSpec], *, groups_per_step: int = 1, state: dict | None = None
    ) -> GroupStream:
        """A :class:`GroupStream` of ``specs`` (``state``: from :meth:`GroupStream.state`, to resume)."""
        return GroupStream(self, specs, groups_per_step, state=state)

    async def stream(self, specs: Iterable[GroupSpec], *, groups_per_step: int = 1) -> AsyncIterator[Group]:
        """Yield groups as they complete, taken ``groups_per_step`` per policy version (see
        :class:`GroupStream`)."""
        stream = self.open_stream(specs, groups_per_step=groups_per_step)
        try:
            while (group := await stream.take()) is not None:
                yield group
        finally:
            await stream.aclose()

    # ------------------------------------------------------------------ internals
    def _staleness(self, group: Group) -> int | None:
        oldest = group.oldest_policy_version
        return None if oldest is None else self.policy.policy_version - oldest

    def _hand_over(self, spec: GroupSpec, members: list) -> Group:
        group = Group(spec=spec, members=members)
        group.staleness = self._staleness(group)
        return group


@dataclasses.dataclass
class _Entry:
    """A group in a stream: its spec, the version it was admitted at, and the group once done."""

    spec: GroupSpec
    admitted_at: int
    task: asyncio.Task | None = None
    group: Group | None = None
    finished: int = 0  # hand-over order among finished groups


class GroupStream:
    """Groups of ``specs`` rolled out in the background, handed over as they finish (see the
    module docstring for the staleness rule). Rollouts keep running while the consumer trains:
    the stream admits new groups whenever the rule allows, from its own task.

    ``take(picks_left)`` hands over one group for the batch being built at the current policy
    version, ``picks_left`` counting this one (default: what is left of ``groups_per_step`` at
    this version). A group the consumer then discards (dynamic sampling) is simply not counted
    as a pick: pass the same ``picks_left`` again. ``state()`` is a JSON-ready snapshot — the
    finished groups not yet taken, the specs still rolling out (rerun from the start on resume,
    same seeds) and how many specs were drawn — so a resumed run loses and duplicates nothing.
    """

    def __init__(
        self, engine: RolloutEngine, specs: Iterable[GroupSpec], groups_per_step: int, *, state: dict | None = None
    ):
        if groups_per_step < 1:
            raise ValueError("groups_per_step must be >= 1")
        self.engine = engine
        self.groups_per_step = groups_per_step
        self.bound = engine.config.max_staleness
        c = engine.config
        self.max_running = -(-c.max_concurrency // c.group_size) + 1  # every slot busy, one group queued
        self._specs: Iterator[GroupSpec] = iter(specs)
        self._entries: list[_Entry] = []  # not yet taken, in admission order
        self._queued: list[_Entry] = []  # restored from a checkpoint: admitted, to be (re)started
        self._picks = (engine.policy.policy_version, groups_per_step)  # (version, picks left at it)
        self._finished = 0
        self._exhausted = False
        self._error: BaseException | None = None
        self.drawn = 0
        self._wake = asyncio.Event()
        self._pump: asyncio.Task | None = None
        if state is not None:
            self._restore(state)

    # ------------------------------------------------------------------ consumer side
    @property
    def version(self) -> int:
        return self.engine.policy.policy_version

    async def take(self, picks_left: int | None = None) -> Group | None:
        """The next group for the batch at the current version (None: the specs ran out)."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run())
        while True:
            v = self.version
            if picks_left is None:
                picks_left = self._picks[1] if self._picks[0] == v else self.groups_per_step
            ready = sorted((e for e in self._entries if e.group is not None), key=lambda e: e.finished)
            entry = next((e for e in ready if self._may_hand_over(e, v, picks_left)), None)
            if entry is not None:
                self._entries.remove(entry)
                self._picks = (v, picks_left - 1)
                self._wake.set()
                group = entry.group
                group.staleness = self.engine._staleness(group)
                return group
            if self._error is None and self._pump.done() and not self._pump.cancelled():
                self._error = self._pump.exception()
            if self._error is not None:
                raise self._error  # a failed rollout (strict mode) fails the consumer
            if self._pump.done() and not self._entries:
                return None
            self._wake.clear()
            await _wait(self._wake, 0.05)

    def state(self) -> dict:
        """A JSON-ready snapshot (see the class docstring)."""
        return {
            "drawn": self.drawn,
            "picks": list(self._picks),
            "entries": [
                {
                    "spec": dataclasses.asdict(e.spec),
                    "admitted_at": e.admitted_at,
                    "members": None if e.group is None else [m.model_dump(mode="json") for m in e.group.members],
                }
                for e in self._entries + self._queued
            ],
        }

    async def aclose(self) -> None:
        """Stop admitting and cancel the groups still rolling out."""
        tasks = [e.task for e in self._entries if e.task is not None and not e.task.done()]
        if self._pump is not None:
            tasks.append(self._pump)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the rule
    def _may_hand_over(self, entry: _Entry, v: int, picks_left: int) -> bool:
        """After handing ``entry`` over, can every other group still meet its deadline?"""
        s, b = self.bound, self.groups_per_step
        if s is None:
            return True
        others = [e.admitted_at + s for e in self._entries + self._queued if e is not entry]
        return all(sum(d <= v + j for d in others) <= picks_left - 1 + j * b for j in range(s + 1))

    def _may_admit(self) -> bool:
        if self._running() >= self.max_running:
            return False
        if self.bound is None:
            return True
        v, (at, left) = self.version, self._picks
        taken = self.groups_per_step - left if at == v else 0
        return len(self._entries) + len(self._queued) < (self.bound + 1) * self.groups_per_step - taken

    # ------------------------------------------------------------------ producer side
    async def _run(self) -> None:
        while True:
            while self._queued and self._running() < self.max_running:  # admitted before a resume
                self._start(self._queued.pop(0))
            while not self._queued and self._may_admit():
                spec = None if self._exhausted else next(self._specs, None)
                if spec is None:
                    self._exhausted = True
                    break
                self.drawn += 1
                self._start(_Entry(spec, self.version))
            if self._exhausted and not self._queued and all(e.group is not None for e in self._entries):
                return
            self._wake.clear()
            await _wait(self._wake, 0.05)  # a group finished or was taken, or the version moved

    def _running(self) -> int:
        return sum(1 for e in self._entries if e.group is None)

    def _start(self, entry: _Entry) -> None:
        self._entries.append(entry)
        entry.task = asyncio.ensure_future(self.engine.run_group(entry.spec))
        entry.task.add_done_callback(lambda task: self._done(entry, task))

    def _done(self, entry: _Entry, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            self._error = task.exception()
            self._wake.set()
            return
        self._finished += 1
        entry.group, entry.finished = task.result(), self._finished
        self._wake.set()

    def _restore(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
        at, left = state["picks"]
        self._picks = (int(at), int(left))
        for item in state["entries"]:
            entry = _Entry(GroupSpec(**item["spec"]), int(item["admitted_at"]))
            if item["members"] is not None:
                members = [Trajectory.model_validate(m) for m in item["members"]]
                self._finished += 1
                entry.group, entry.finished = Group(spec=entry.spec, members=members), self._finished
                self._entries.append(entry)
            else:
                self._queued.append(entry)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` passed (``asyncio.wait``: on Python 3.11
    ``wait_for`` can swallow a cancellation that arrives as the event is set)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()
