"""The one turn loop: the same seeds, step errors and endings for every actor, chains and trees."""

import pytest
from agentrl_envs.toy import MazeEnv

from agentrl.env import OracleAgent, aplay_episode
from agentrl.errors import InfraError
from agentrl.policy import Completion, SamplingParams
from agentrl.rollout import (
    ChatActor,
    GroupSpec,
    RolloutConfig,
    RolloutEngine,
    ScriptedActor,
    TokenActor,
    TreeConfig,
    run_actor,
)
from agentrl.rollout.episode import turn_seed

SHORT_TURNS = SamplingParams(max_tokens=16, stop=("e", "a", " "))


class SeedLog:
    """A chat model that answers one fixed bad move and logs each request's sampling seed."""

    policy_version = 0

    def __init__(self):
        self.seeds = []

    async def chat(self, messages, sampling, tools=None):
        self.seeds.append(sampling.seed)
        return Completion(token_ids=[], logprobs=[], finish_reason="stop", text="jump")


class SeedLogPolicy:
    """Wraps the real token policy and logs each request's seed."""

    def __init__(self, policy):
        self.policy, self.seeds = policy, []
        self.policy_version, self.max_context_tokens = policy.policy_version, policy.max_context_tokens

    async def generate(self, prompt_token_ids, sampling):
        self.seeds.append(sampling.seed)
        return await self.policy.generate(prompt_token_ids, sampling)


async def test_every_actor_gets_the_same_per_turn_seeds_and_endings(policy, renderer):
    def maze():
        return MazeEnv(max_invalid_actions=3)

    chat = SeedLog()
    traj = await run_actor(maze, ChatActor(chat, SamplingParams()), seed=4, sampling_seed=77)
    assert chat.seeds == [turn_seed(77, t) for t in range(3)]
    assert (traj.status, traj.truncation, traj.num_turns) == ("truncated", "invalid_actions", 3)
    assert all(s.info["error"] for s in traj.steps)  # the env's error text is kept on every step

    logged = SeedLogPolicy(policy)
    token = await run_actor(maze, TokenActor(logged, renderer, SHORT_TURNS), seed=4, sampling_seed=77)
    assert logged.seeds == [turn_seed(77, t) for t in range(token.num_turns)]


async def test_scripted_agents_run_through_the_same_loop():
    oracle = await run_actor(lambda: MazeEnv(), ScriptedActor(OracleAgent), seed=3)
    env = MazeEnv()
    direct = await aplay_episode(env, OracleAgent(env), seed=3)
    assert oracle.success and oracle.status == "ok" and oracle.final_reward == direct.final_reward
    assert [s.action for s in oracle.steps] == [s.action for s in direct.steps]
    assert [s.state_key for s in oracle.steps] == [s.state_key for s in direct.steps]

    short = await run_actor(lambda: MazeEnv(max_turns=1, size=5), ScriptedActor(OracleAgent), seed=3)
    assert (short.status, short.truncation) == ("truncated", "max_turns")


class OSErrorMaze(MazeEnv):
    def _step(self, action):
        raise ConnectionResetError("a bug that happens to be an OSError")


class InfraMaze(MazeEnv):
    def _step(self, action):
        raise InfraError("the service behind the env is gone")


async def test_only_infra_errors_are_infra():
    oracle = ScriptedActor(OracleAgent)
    with pytest.raises(ConnectionResetError):  # a bare OSError is not infrastructure: it fails the run
        await run_actor(OSErrorMaze, oracle, seed=1)
    masked = await run_actor(OSErrorMaze, oracle, seed=1, strict=False)
    assert masked.status == "infra_error" and masked.error.startswith("ConnectionResetError")
    infra = await run_actor(InfraMaze, oracle, seed=1)
    assert (infra.status, infra.error) == ("infra_error", "InfraError: the service behind the env is gone")


def tree_shape(tree):
    """The tree as a set of (depth, context ‖ completion) — independent of node numbering."""
    return sorted(
        (n.step.index, tuple(n.step.prompt_token_ids + n.step.completion_token_ids)) for n in tree.nodes
    )


async def test_tree_siblings_sample_differently_and_the_same_config_grows_the_same_tree(
    model, tokenizer, renderer
):
    from agentrl.policy import HFPolicy

    # Two invalid moves end an episode: node 0 is the only expandable node, so both rounds branch
    # from it and its three children are siblings sampled from one identical context.
    config = RolloutConfig(max_concurrency=4, sampling=SHORT_TURNS, seed=3)
    tree_config = TreeConfig(num_trees=2, rounds=2, expansions_per_round=1)
    shapes = []
    for batch in (1, 4):
        policy = HFPolicy(model, tokenizer, max_batch_size=batch, max_wait_s=0.01)
        engine = RolloutEngine(lambda: MazeEnv(max_invalid_actions=2), policy, renderer, config)
        [group] = await engine.run_trees([GroupSpec(seed=5)], tree_config)
        await policy.aclose()
        shapes.append([tree_shape(t) for t in group.members])
        for tree in group.members:
            siblings = [n.step.completion_token_ids for n in tree.nodes if n.parent_id == 0]
            assert len(siblings) == 3
            assert len({tuple(s) for s in siblings}) == 3, "siblings repeated one sample: seeds were shared"
            assert tree.info["branches"] == 2 and len(tree.leaves) == 3
        assert tree_shape(group.members[0]) != tree_shape(group.members[1])  # trees differ too
    assert shapes[0] == shapes[1]  # same config (whatever the batching) → same trees


async def test_a_tree_branch_records_step_errors_and_default_truncation(policy, renderer):
    engine = RolloutEngine(
        lambda: MazeEnv(max_invalid_actions=2), policy, renderer, RolloutConfig(sampling=SHORT_TURNS)
    )
    [group] = await engine.run_trees(
        [GroupSpec(seed=5)], TreeConfig(num_trees=1, rounds=1, expansions_per_round=1)
    )
    [tree] = group.members
    assert all(n.step.info.get("error") for n in tree.nodes if not n.step.valid_action)
    assert all(leaf.truncation in ("invalid_actions", "length") for leaf in tree.leaves)


async def test_a_bug_in_a_tree_branch_fails_the_run_unless_not_strict(policy, renderer):
    class BuggyFork(MazeEnv):
        async def afork(self):
            raise KeyError("bug in afork")

    config = RolloutConfig(sampling=SHORT_TURNS)
    engine = RolloutEngine(lambda: BuggyFork(max_invalid_actions=2), policy, renderer, config)
    with pytest.raises(KeyError):
        await engine.run_trees([GroupSpec(seed=5)], TreeConfig(num_trees=1))
    engine.config = config.model_copy(update={"strict": False})
    [group] = await engine.run_trees([GroupSpec(seed=5)], TreeConfig(num_trees=1))
    assert group.members[0].info["errors"][0].startswith("KeyError")
