"""The bandit envs of the learning checks, and the format-only (random) warm start."""

import asyncio
import collections

import agentrl
from agentrl.policy.render import ChatRenderer
from agentrl.policy.tiny import build_tiny_tokenizer
from agentrl.train.sft import oracle_demonstrations


def test_the_paying_door_depends_on_the_room_and_other_doors_and_bad_actions_do_not_pay():
    env = agentrl.make("agentrl/ContextualBandit-v0")
    for room, paying, other in ((1, 2, 1), (2, 1, 2)):
        obs, info = env.reset(options={"task_id": f"train-room{room}"})
        assert f"room {room}." in obs and info["task_id"] == f"train-room{room}"
        _, reward, terminated, _, _ = env.step(f"door[{paying}]")
        assert (reward, terminated) == (1.0, True)
        env.reset(options={"task_id": f"train-room{room}"})
        _, reward, terminated, _, _ = env.step(f"door[{other}]")
        assert (reward, terminated) == (0.0, True)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("door[3]")
    assert (reward, terminated, truncated) == (0.0, True, False)  # invalid: the one turn is spent, a failure
    plain = agentrl.make("agentrl/Bandit-v0")
    assert {plain.reset(seed=s)[1]["task_id"] for s in range(8)} == {"train-room1"}


def test_random_demonstrations_are_valid_and_independent_of_the_room():
    # Seeded like the env's own task draw, the "random" door was a function of the room.
    renderer = ChatRenderer(build_tiny_tokenizer(), mode="window")
    demos = asyncio.run(oracle_demonstrations(
        lambda: agentrl.make("agentrl/ContextualBandit-v0"), renderer, 64, 0, demonstrator="random"
    ))
    pairs = collections.Counter((t.task_id, t.steps[0].action) for t in demos)
    assert all(t.steps[0].valid_action for t in demos)
    assert len(pairs) == 4 and min(pairs.values()) >= 8, pairs  # every (room, door) appears
