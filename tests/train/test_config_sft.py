"""SFT sized in optimizer steps, and the CPU thread count (issue 18)."""

import numpy as np

from agentrl.train.config import load_config
from agentrl.train.learner import cpu_threads
from agentrl.train.sft import batches


def test_sft_steps_are_optimizer_steps_of_full_batches_with_rows_seen_evenly():
    # 10 rows, batches of 4, 7 steps: 28 draws = 2.8 passes; every batch full, each row 2 or 3 times.
    out = batches(10, 4, 7, np.random.default_rng(0))
    assert len(out) == 7 and all(len(b) == 4 for b in out)
    counts = np.bincount(np.concatenate(out), minlength=10)
    assert counts.sum() == 28 and counts.min() >= 2 and counts.max() <= 3
    # Fewer rows than a batch (full-context mode, few episodes): every step sees all rows once.
    assert all(sorted(b) == [0, 1, 2] for b in batches(3, 32, 5, np.random.default_rng(1)))


def test_the_default_sizes_sft_in_steps():
    assert load_config().sft.steps == 24


def test_cpu_threads_auto_is_half_the_usable_cores_at_least_one():
    import os

    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(0) == max(1, min(8, cores // 2))
    assert cpu_threads(3) == 3


def test_demonstrations_cover_every_train_task_evenly():
    """64 demos over the default maze's 6 train tasks: 10 or 11 each. Drawn by episode seed, the
    hardest maze (maze3-0002: 4 moves, the only one starting left) got 4 of 64, and seed 1's warm
    start never solved it; RL never saw it solved either (0 of 45 eval episodes at step 30)."""
    import asyncio
    import collections

    import agentrl
    from agentrl.policy.render import ChatRenderer
    from agentrl.policy.tiny import build_tiny_tokenizer
    from agentrl.train.sft import oracle_demonstrations

    options = load_config().env.options
    renderer = ChatRenderer(build_tiny_tokenizer(), mode="window")
    train = agentrl.make("agentrl/Maze-v0", **options).tasks.split("train").ids()
    for seed in (0, 1):
        demos = asyncio.run(oracle_demonstrations(lambda: agentrl.make("agentrl/Maze-v0", **options), renderer, 64, seed))
        counts = collections.Counter(t.task_id for t in demos)
        assert set(counts) == set(train) and len(train) == 6
        assert sorted(counts.values()) == [10, 10, 11, 11, 11, 11], counts
        assert all(t.success for t in demos)  # the oracle solves each
    # More tasks than episodes: a seeded subset, no task twice.
    many = {"num_tasks": 40}
    demos = asyncio.run(oracle_demonstrations(lambda: agentrl.make("agentrl/Maze-v0", **many), renderer, 16, 0))
    assert len({t.task_id for t in demos}) == 16


def test_a_remote_env_says_its_tasks_are_not_listable_and_its_demos_keep_seed_draws():
    """A ``RemoteEnv``'s tasks live on its server: ``task_ids()`` is None there (a local env lists
    its split's), and its demos take the task the server draws from each episode's seed."""
    import asyncio

    import agentrl
    from agentrl.env.server import EnvServer, ServerThread
    from agentrl.policy.render import ChatRenderer
    from agentrl.policy.tiny import build_tiny_tokenizer
    from agentrl.train.sft import demonstration_tasks, oracle_demonstrations

    options = load_config().env.options
    local = agentrl.make("agentrl/Maze-v0", **options)
    assert local.task_ids() == local.tasks.split("train").ids() and len(local.task_ids()) == 6
    assert local.task_ids("test") == local.tasks.split("test").ids()
    drawn = [local.reset(seed=5 + i)[1]["task_id"] for i in range(8)]
    renderer = ChatRenderer(build_tiny_tokenizer(), mode="window")
    with ServerThread(EnvServer("agentrl/Maze-v0", options)) as server:
        remote = agentrl.make("agentrl/Maze-v0", remote=server.url)
        assert remote.task_ids() is None and demonstration_tasks(remote, 3, 5) == ["", "", ""]
        remote.close()
        demos = asyncio.run(oracle_demonstrations(
            lambda: agentrl.make("agentrl/Maze-v0", remote=server.url), renderer, 8, 5, demonstrator="random"
        ))
    assert [t.task_id for t in demos] == drawn and len(set(drawn)) > 1
