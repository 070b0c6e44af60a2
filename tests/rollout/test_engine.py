"""The async engine: groups, concurrency cap, retries, staleness, tree rollouts."""

from agentrl_envs.toy import MazeEnv

from agentrl.policy import SamplingParams
from agentrl.rollout import Group, GroupSpec, RolloutConfig, RolloutEngine, TreeConfig
from agentrl.sandbox.errors import SandboxUnavailable
from agentrl.types import RolloutTree, StepRecord, Trajectory, TreeLeaf, TreeNode

SHORT_TURNS = SamplingParams(max_tokens=16, stop=("e", "a", " "))


class CountingMaze(MazeEnv):
    """Counts live envs (created, not yet closed) to check the concurrency cap."""

    live = peak = 0

    def __init__(self, **options):
        super().__init__(max_invalid_actions=2, **options)
        type(self).live += 1
        type(self).peak = max(type(self).peak, type(self).live)

    async def aclose(self):
        type(self).live -= 1


async def test_group_members_share_seed_and_task_and_respect_the_cap(policy, renderer):
    config = RolloutConfig(group_size=3, max_concurrency=2, sampling=SHORT_TURNS, strict=True)
    engine = RolloutEngine(CountingMaze, policy, renderer, config)
    groups = await engine.run(2)
    assert len(groups) == 2 and groups[0].spec.seed != groups[1].spec.seed
    for group in groups:
        assert len(group.members) == 3
        assert {(t.seed, t.task_id, t.group_id) for t in group.members} == {
            (group.spec.seed, group.members[0].task_id, group.group_id)
        }
        assert group.staleness == 0
    assert CountingMaze.peak == 2 and CountingMaze.live == 0  # never more than the cap; all closed
    assert engine.stats["episodes"] == 6


async def test_infra_failures_are_retried_with_the_same_seed(policy, renderer):
    attempts = []

    class FlakyMaze(MazeEnv):
        async def _areset(self, task):
            attempts.append(self._episode_seed)
            if len(attempts) <= 2:
                raise SandboxUnavailable("sandbox failed to start")
            return self._reset(task)

    config = RolloutConfig(group_size=1, max_attempts=3, sampling=SamplingParams(max_tokens=2))
    engine = RolloutEngine(FlakyMaze, policy, renderer, config)
    [group] = await engine.run([GroupSpec(seed=99)])
    [traj] = group.members
    assert traj.status == "truncated" and traj.info["attempts"] == 3 and attempts == [99, 99, 99]
    assert engine.stats["infra_errors"] == 2

    attempts.clear()
    engine.config = config.model_copy(update={"max_attempts": 2})
    [group] = await engine.run([GroupSpec(seed=98)])
    assert group.members[0].status == "infra_error" and group.members[0].info["attempts"] == 2


async def test_stream_bounds_staleness_by_capacity(policy, renderer):
    config = RolloutConfig(group_size=2, max_staleness=0, sampling=SamplingParams(max_tokens=2))
    engine = RolloutEngine(MazeEnv, policy, renderer, config)
    specs = [GroupSpec(seed=s) for s in range(4)]
    seen = []
    async for group in engine.stream(specs, groups_per_step=1):
        versions = {s.policy_version for t in group.members for s in t.steps}
        seen.append((versions, group.staleness))
        policy.bump_version()  # the trainer consumed the group and updated the weights
    # With bound 0 a group only starts after the previous one was consumed: each is fresh.
    assert seen == [({0}, 0), ({1}, 0), ({2}, 0), ({3}, 0)]


async def test_stream_without_bound_overlaps_groups(policy, renderer):
    config = RolloutConfig(group_size=2, max_concurrency=8, sampling=SamplingParams(max_tokens=2))
    engine = RolloutEngine(MazeEnv, policy, renderer, config)
    groups = [g async for g in engine.stream([GroupSpec(seed=s) for s in range(3)])]
    assert sorted(g.spec.seed for g in groups) == [0, 1, 2]
    assert policy.stats["batches"] < 6  # episodes of different groups shared forward passes


async def test_tree_rollouts_share_prefixes(policy, renderer):
    config = RolloutConfig(max_concurrency=4, sampling=SHORT_TURNS, strict=True)
    engine = RolloutEngine(lambda: MazeEnv(max_invalid_actions=3), policy, renderer, config)
    tree_config = TreeConfig(num_trees=2, rounds=1, expansions_per_round=2)
    [group] = await engine.run_trees([GroupSpec(seed=5)], tree_config)
    assert len(group.members) == 2
    for tree in group.members:
        assert tree.seed == 5 and tree.task_id == group.members[0].task_id
        # 3 invalid turns end each episode (or a turn cut at max_tokens): the first chain has 2
        # non-terminal nodes; the round expands both, adding 2 episodes (3 leaves).
        assert tree.info["branches"] == 2 and len(tree.leaves) == 3
        by_id = {n.node_id: n for n in tree.nodes}
        for node in tree.nodes:
            if node.parent_id is not None:
                parent = by_id[node.parent_id].step
                sampled = parent.prompt_token_ids + parent.completion_token_ids
                assert node.step.prompt_token_ids[: len(sampled)] == sampled
                assert node.step.index == parent.index + 1
        assert all(len(p.steps) == 3 and p.truncation in ("invalid_actions", "length") for p in tree.paths())
        assert tree.info["generated_tokens"] == sum(len(n.step.completion_token_ids) for n in tree.nodes)
        assert "columns" in tree.__dict__  # the step columns were taken when the tree was finished
        # Shared prefixes are generated once: fewer tokens than the 3 paths spelled out.
        assert tree.info["generated_tokens"] < sum(
            len(s.completion_token_ids) for p in tree.paths() for s in p.steps
        )


async def test_tree_budget_stops_expansion(policy, renderer):
    config = RolloutConfig(sampling=SHORT_TURNS)
    engine = RolloutEngine(lambda: MazeEnv(max_invalid_actions=3), policy, renderer, config)
    tree_config = TreeConfig(num_trees=1, rounds=3, expansions_per_round=2, max_generated_tokens=1)
    [group] = await engine.run_trees([GroupSpec(seed=5)], tree_config)
    [tree] = group.members
    assert tree.info["branches"] == 0 and len(tree.leaves) == 1 and len(tree.nodes) == 3


async def test_a_failing_branch_is_an_infra_error_leaf(policy, renderer):
    class ForkFails(MazeEnv):
        forks = 0

        async def afork(self):
            ForkFails.forks += 1
            if ForkFails.forks > 2:  # the root chain's snapshots work, the branches' forks fail
                raise SandboxUnavailable("snapshot store unreachable")
            return await super().afork()

    engine = RolloutEngine(
        lambda: ForkFails(max_invalid_actions=3), policy, renderer, RolloutConfig(sampling=SHORT_TURNS)
    )
    [group] = await engine.run_trees(
        [GroupSpec(seed=5)], TreeConfig(num_trees=1, rounds=1, expansions_per_round=1)
    )
    [tree] = group.members
    assert [leaf.status for leaf in tree.leaves] == ["truncated", "infra_error"]
    assert tree.info["errors"] == ["SandboxUnavailable: snapshot store unreachable"]


async def test_rollouts_are_reproducible_whatever_the_batching(model, tokenizer, renderer):
    """Per-member, per-turn sampling seeds: one request at a time or batches of 8 give the same
    tokens, and the members of a group still sample differently."""
    from agentrl.policy import HFPolicy

    def tokens(groups):
        return [[[s.completion_token_ids for s in t.steps] for t in g.members] for g in groups]

    config = RolloutConfig(group_size=4, max_concurrency=8, sampling=SHORT_TURNS, strict=True)
    runs = []
    for batch in (1, 8):
        policy = HFPolicy(model, tokenizer, max_batch_size=batch, max_wait_s=0.01)
        runs.append(tokens(await RolloutEngine(CountingMaze, policy, renderer, config).run(2)))
        await policy.aclose()
    assert runs[0] == runs[1]
    first_turns = [member[0] for member in runs[0][0]]
    assert len({tuple(t) for t in first_turns}) > 1


def step(action, version):
    return StepRecord(index=0, observation="", action=action, policy_version=version)


def test_group_steps_and_episodes_walk_chains_and_trees_alike():
    """A tree 0 → 1, 0 → 2 → 3 with leaves 1 and 3 has two paths sharing node 0: its steps are
    the four nodes' (0 once), its episodes the two leaves; the oldest version is the least
    recorded one (2, node 2's), a step without a version (scripted) counting for none."""
    nodes = [TreeNode(node_id=0, step=step("a", 3)), TreeNode(node_id=1, parent_id=0, step=step("b", None)),
             TreeNode(node_id=2, parent_id=0, step=step("c", 2)), TreeNode(node_id=3, parent_id=2, step=step("d", 5))]
    leaves = [TreeLeaf(node_id=1, final_reward=1.0), TreeLeaf(node_id=3, status="infra_error")]
    trees = Group(spec=GroupSpec(seed=0), members=[RolloutTree(task_id="t", nodes=nodes, leaves=leaves)])
    assert [s.action for s in trees.steps()] == ["a", "b", "c", "d"]
    assert list(trees.episodes()) == leaves
    assert trees.oldest_policy_version == 2

    chains = [Trajectory(task_id="t", steps=[step("a", 4), step("b", 6)]), Trajectory(task_id="t", steps=[step("c", None)])]
    group = Group(spec=GroupSpec(seed=0), members=chains)
    assert [s.action for s in group.steps()] == ["a", "b", "c"]
    assert list(group.episodes()) == chains
    assert group.oldest_policy_version == 4
    assert Group(spec=GroupSpec(seed=0), members=[chains[1]]).oldest_policy_version is None


async def test_an_attempt_past_its_deadline_is_logged_with_where_it_waited_and_counted(
    policy, renderer, caplog, monkeypatch
):
    import asyncio
    import inspect
    import logging

    from agentrl.rollout import episode
    from agentrl.train.metrics import attempt_metrics

    hung = []

    class HangsOnce(MazeEnv):
        async def _areset(self, task):
            if not hung:
                hung.append(task.id)
                await asyncio.Event().wait()  # a backend that never answers
            return self._reset(task)

    monkeypatch.setattr(episode, "_stacks_logged", False)
    config = RolloutConfig(group_size=2, episode_timeout_s=0.5, max_attempts=2, sampling=SamplingParams(max_tokens=2))
    engine = RolloutEngine(HangsOnce, policy, renderer, config)
    with caplog.at_level(logging.WARNING):
        [group] = await engine.run([GroupSpec(seed=5, task_id="maze5-0003")])
    assert sorted(t.info["attempts"] for t in group.members) == [1, 2]
    assert all(t.status != "infra_error" for t in group.members)
    assert engine.stats["infra_errors"] == 1 and engine.stats["retries"] == 1
    assert attempt_metrics([group]) == {"rollout/failed_attempts": 1.0}
    attempts = [r.getMessage() for r in caplog.records if r.name == "agentrl.rollout.engine"]
    assert len(attempts) == 1
    assert attempts[0].startswith("episode seed 5 task maze5-0003 member ")
    line = inspect.getsourcelines(HangsOnce._areset)[1] + 3  # the wait that never ends
    assert attempts[0].endswith(
        f": attempt 1/2 failed (retrying): TimeoutError: episode deadline of 0.5s passed, waiting in _areset "
        f"(test_engine.py:{line})"
    )
    [stacks] = [r.getMessage() for r in caplog.records if "stack of every thread" in r.getMessage()]
    assert "thread MainThread:" in stacks and "agentrl-batcher" in stacks  # logged once, naming the threads
