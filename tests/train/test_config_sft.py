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
    assert load_config().sft.steps == 28


def test_cpu_threads_auto_is_half_the_usable_cores_at_least_one():
    import os

    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(0) == max(1, min(8, cores // 2))
    assert cpu_threads(3) == 3
