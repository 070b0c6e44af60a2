"""GRPO: group-relative outcome advantage.

    mean_std_norm:  A_i = (R_i − mean_G R) / (std_G R + ε)
    mean_norm:      A_i =  R_i − mean_G R                       (no std division)

R_i is the episode outcome (``episode_reward``), G the rollouts of one
task from one initial state (``group``), std unbiased, ε = 1e-6. Every step of an episode gets
A_i (on a deduplicated tree a node gets the sum over the episodes below it, see
:meth:`StepBatch.credit`).

Parameters (``GRPOConfig``):

* ``mode`` — ``mean_std_norm`` (default) or ``mean_norm``.
* ``episode_stats`` — ``trajectory`` (default, one value per episode, as DeepSeekMath) or
  ``step``: every step row enters the mean/std (verl-agent's ``compute_mean_std_cross_steps``,
  which weighs long episodes more).
* ``singleton`` — a group with < 2 valid episodes: ``zero`` (default) or ``raw`` (reference).

Masked episodes (``valid`` False) enter no statistic and get 0.

Paper: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
Language Models", arXiv 2402.03300.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.stats import EPS, Mode, Singleton, group_normalize

EpisodeStats = Literal["trajectory", "step"]


class GRPOConfig(AlgoConfig):
    mode: Mode = "mean_std_norm"
    episode_stats: EpisodeStats = "trajectory"
    singleton: Singleton = "zero"
    eps: float = EPS


def episode_advantages(
    batch: StepBatch,
    scores: np.ndarray,
    key: np.ndarray,
    *,
    mode: Mode = "mean_std_norm",
    episode_stats: EpisodeStats = "trajectory",
    singleton: Singleton = "zero",
    eps: float = EPS,
) -> np.ndarray:
    """Group-normalised ``scores`` (one per episode, groups given by ``key`` per episode)."""
    if episode_stats not in ("trajectory", "step"):
        raise ValueError(f"episode_stats must be 'trajectory' or 'step', got {episode_stats!r}")
    weight = batch.episode_length if episode_stats == "step" else None
    return group_normalize(
        scores,
        key,
        batch.episode_valid,
        mode=mode,
        singleton=singleton,
        eps=eps,
        weight=weight,
    )


def grpo_episode(batch: StepBatch, cfg: GRPOConfig) -> np.ndarray:
    """GRPO advantage of each episode (leaf order)."""
    rows = batch.episode_rows
    return episode_advantages(
        batch,
        batch.episode_reward,
        batch.group[rows],
        mode=cfg.mode,
        episode_stats=cfg.episode_stats,
        singleton=cfg.singleton,
        eps=cfg.eps,
    )


def grpo(batch: StepBatch, cfg: GRPOConfig) -> np.ndarray:
    """Per-row GRPO advantages."""
    return batch.credit(grpo_episode(batch, cfg))


register_estimator("grpo", grpo, GRPOConfig)
