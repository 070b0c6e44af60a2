"""RLOO: REINFORCE with a leave-one-out baseline.

    A_i = R_i − (1/(N−1)) Σ_{j≠i} R_j  =  N/(N−1) · (R_i − mean_G R)

over the N valid episodes of the group; no std division. A group with fewer than two valid
episodes has no baseline and gets 0. Masked episodes enter no sum and get 0.

Papers: Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
from Human Feedback in LLMs", arXiv 2402.14740; Kool et al., "Buy 4 REINFORCE Samples, Get a
Baseline for Free!", ICLR 2019 workshop.
"""

from __future__ import annotations

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.stats import group_stats, normalize


class RLOOConfig(AlgoConfig):
    pass


def rloo(batch: StepBatch, cfg: RLOOConfig) -> np.ndarray:
    rows = batch.episode_rows
    scores, key, valid = batch.episode_reward, batch.group[rows], batch.episode_valid
    stats = group_stats(scores, key, valid)
    centred = normalize(scores, key, valid, stats, mode="mean_norm", singleton="zero")
    n = np.maximum(stats.members[key], 2.0)
    return batch.credit(centred * n / (n - 1.0))


register_estimator("rloo", rloo, RLOOConfig)
