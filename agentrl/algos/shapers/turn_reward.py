"""Turn-reward hook: add a per-step reward computed from the whole batch.

    r_t ← r_t + x_t            R(τ) ← R(τ) + Σ_{t ∈ τ} x_t       (``to_outcome=True``)

``fn(batch) -> np.ndarray`` returns one extra reward per row (vectorised over the batch: a
process reward model's scores, a GTPO-turn partial credit, a curiosity bonus …). With
``to_outcome`` the episode score moves by the same amount, so outcome estimators and step-return
estimators stay consistent; set it False to shape only the step rewards.

This is GTPO-turn's turn reward ``r_{i,j} = r^acc_{i,j} + r^fmt_{i,j}`` made pluggable
(Ding et al., arXiv 2511.14846, Eq. 5).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import ConfigDict

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_shaper


class TurnRewardConfig(AlgoConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    fn: Callable[[StepBatch], np.ndarray]
    to_outcome: bool = True


def add_turn_rewards(batch: StepBatch, extra: np.ndarray, to_outcome: bool = True) -> StepBatch:
    """The batch with ``extra`` (one value per row) added to the step rewards (and outcomes)."""
    extra = np.asarray(extra, dtype=np.float64)
    if extra.shape != (batch.n_rows,):
        raise ValueError(
            f"turn rewards must have one value per row ({batch.n_rows}), got shape {extra.shape}"
        )
    if not np.all(np.isfinite(extra)):
        raise ValueError("turn rewards contain NaN or inf")
    changes = {"reward": batch.reward + extra}
    if to_outcome:
        changes["episode_reward"] = batch.episode_reward + batch.episode_sum(extra)
    return batch.replace(**changes)


class TurnReward:
    """Shaper that adds ``config.fn(batch)`` to every step reward."""

    def __init__(self, config: TurnRewardConfig):
        self.config = config

    def __call__(self, batch: StepBatch) -> StepBatch:
        return add_turn_rewards(batch, self.config.fn(batch), self.config.to_outcome)


register_shaper("turn_reward", TurnReward, TurnRewardConfig)
