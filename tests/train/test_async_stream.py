"""The async group stream: staleness bounded, slow groups waited for (not starved), partial
rollouts across weight updates, and a snapshot that resumes with nothing lost or duplicated.

A real tiny transformers sampler; the env's tool turns sleep, so episode lengths (in time) are
set by the task: ``t<n>`` takes n turns. The "learner" sleeps and bumps the policy version.
"""

import asyncio
import json

import pytest

from agentrl.env import EnvConfig, StepOutcome, TaskSet, TextEnv
from agentrl.policy import SamplingParams
from agentrl.rollout import GroupSpec, RolloutConfig, RolloutEngine


class TurnsConfig(EnvConfig):
    max_turns: int = 100
    max_invalid_actions: int | None = None
    step_s: float = 0.01


class TurnsEnv(TextEnv):
    """Task ``t<n>``: n tool turns of ``step_s`` seconds each; reward 1 at the end."""

    Config = TurnsConfig
    instructions = "Call tools until the job is done."

    def build_tasks(self) -> TaskSet:
        return TaskSet.from_items(((f"t{n}", {"turns": n}) for n in range(1, 61)), test_fraction=0.0)

    def _reset(self, task) -> str:
        self.t = 0
        return "Start."

    async def _astep(self, action: str) -> StepOutcome:
        await asyncio.sleep(self.config.step_s)
        self.t += 1
        done = self.t >= self.task.data["turns"]
        return StepOutcome(f"out {self.t}", reward=float(done), terminated=done, success=done, tool_calls=1)

    def state_key(self):
        return None


# A turn ends at the first letter, digit or space the random tiny model writes (never cut at max_tokens).
TURN = SamplingParams(max_tokens=32, stop=tuple("abcdefghijklmnopqrstuvwxyz0123456789 "))


def engine(policy, renderer, max_staleness):
    config = RolloutConfig(
        group_size=2, max_concurrency=8, max_staleness=max_staleness, sampling=TURN
    )
    return RolloutEngine(TurnsEnv, policy, renderer, config)


async def learn(stream, policy, per_step, train_s=0.03, steps=None):
    """Take ``per_step`` groups per version, 'train' for ``train_s``, bump the version; until the
    specs run out (or ``steps`` steps). Returns [(version trained at, group)]."""
    taken = []
    while steps is None or steps > 0:
        batch = []
        for k in range(per_step):
            group = await stream.take(per_step - k)
            if group is None:
                break
            batch.append(group)
        if not batch:
            break
        taken += [(policy.policy_version, g) for g in batch]
        await asyncio.sleep(train_s)
        with policy.weights_lock:
            policy.bump_version()
        steps = None if steps is None else steps - 1
    return taken


SLOW_AMONG_FAST = [GroupSpec(seed=0, task_id="t30", group_id="slow")] + [
    GroupSpec(seed=i, task_id="t1", group_id=f"fast{i}") for i in range(1, 15)
]


def versions(group):
    return {s.policy_version for t in group.members for s in t.steps}


@pytest.mark.slow
@pytest.mark.parametrize("bound", [1, 2])
async def test_staleness_bounded_and_a_slow_group_is_not_starved(policy, renderer, bound):
    # One 30-turn group among 14 one-turn groups: short groups overtake it (first finished, first
    # taken), yet it must be trained within `bound` versions of its admission, so the stream
    # waits for it when it is due.
    specs = SLOW_AMONG_FAST
    stream = engine(policy, renderer, bound).open_stream(specs, groups_per_step=2)
    taken = await learn(stream, policy, per_step=2)
    await stream.aclose()
    ids = [g.group_id for _, g in taken]
    assert sorted(ids) == sorted(s.group_id for s in specs)  # every group once: none dropped or repeated
    assert max(g.staleness for _, g in taken) <= bound
    assert all(trained - min(versions(g)) <= bound for trained, g in taken)
    [slow] = [g for _, g in taken if g.group_id == "slow"]
    # Short groups were taken before it, and its episodes ran on across weight updates (partial
    # rollouts): its turns were sampled by more than one version, each turn by one.
    assert ids.index("slow") >= 2
    assert len(versions(slow)) >= 2
    assert all(s.policy_version is not None for t in slow.members for s in t.steps)


@pytest.mark.slow
async def test_without_a_bound_the_slow_group_is_overtaken_unboundedly(policy, renderer):
    # The same run with no bound: the slow group is trained many versions after it started (what
    # the bound prevents), and it is still trained (nothing dropped).
    specs = SLOW_AMONG_FAST
    stream = engine(policy, renderer, None).open_stream(specs, groups_per_step=2)
    taken = await learn(stream, policy, per_step=2)
    await stream.aclose()
    [slow] = [g for _, g in taken if g.group_id == "slow"]
    assert slow.staleness > 2


@pytest.mark.slow
async def test_snapshot_resumes_with_nothing_lost_or_duplicated(policy, renderer):
    specs = [GroupSpec(seed=i, task_id=f"t{1 + 5 * (i % 3)}", group_id=f"g{i}") for i in range(16)]
    eng = engine(policy, renderer, 2)
    stream = eng.open_stream(iter(specs), groups_per_step=2)
    before = await learn(stream, policy, per_step=2, steps=2)
    await asyncio.sleep(0.3)  # let groups finish into the buffer and others start
    state = json.loads(json.dumps(stream.state()))  # what the checkpoint writes
    await stream.aclose()  # the "crash": in-flight episodes are lost
    buffered = {e["spec"]["group_id"]: e["members"] for e in state["entries"] if e["members"] is not None}
    in_flight = {e["spec"]["group_id"] for e in state["entries"] if e["members"] is None}
    assert buffered, "the test needs finished, untrained groups at the snapshot"
    assert state["drawn"] == len(before) + len(buffered) + len(in_flight)

    resumed = eng.open_stream(iter(specs[state["drawn"] :]), groups_per_step=2, state=state)
    after = await learn(resumed, policy, per_step=2)
    await resumed.aclose()
    first = [g.group_id for _, g in before]
    second = [g.group_id for _, g in after]
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(s.group_id for s in specs)  # = an uninterrupted run's set
    for _, group in after:  # buffered groups come back as they were, not rolled out again
        if group.group_id in buffered:
            assert [m.model_dump(mode="json") for m in group.members] == buffered[group.group_id]
