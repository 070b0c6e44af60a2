"""Invalid-action (format) penalty: a step reward for malformed or illegal actions.

    r_t ← r_t − coef · [action_t invalid]        R(τ) ← R(τ) − coef · #invalid steps of τ

The penalty is an ordinary step reward, so estimators that discount step rewards (GiGPO's
``penalty_mode="discounted"``, GTPO-turn's format term r^fmt) carry it to earlier steps, and
outcome estimators see it in the episode score (on a tree, along each leaf's path). GiGPO's
reference form (``penalty_mode="row"``, the penalty on the offending row only) lives in
:mod:`agentrl.algos.gigpo`.

Parameters: ``coef`` (default 0.1, verl-agent's ``invalid_action_penalty_coef``; GTPO-turn's
format penalty is the same 0.1 per offending turn).

Sources: verl-agent ``apply_invalid_action_penalty`` (GiGPO, arXiv 2505.10978); GTPO-turn
r^fmt (arXiv 2511.14846).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_shaper
from agentrl.algos.shapers.turn_reward import add_turn_rewards


class InvalidActionPenaltyConfig(AlgoConfig):
    coef: float = Field(default=0.1, ge=0.0)


def penalize_invalid_actions(batch: StepBatch, coef: float) -> StepBatch:
    """The batch with ``coef`` subtracted from each invalid step's reward and its episodes' scores."""
    invalid = ~batch.action_valid
    if coef == 0.0 or not invalid.any():
        return batch
    return add_turn_rewards(batch, -coef * invalid.astype(np.float64))


class InvalidActionPenalty:
    """Shaper form of :func:`penalize_invalid_actions`."""

    def __init__(self, config: InvalidActionPenaltyConfig | None = None):
        self.config = config or InvalidActionPenaltyConfig()

    def __call__(self, batch: StepBatch) -> StepBatch:
        return penalize_invalid_actions(batch, self.config.coef)


register_shaper("invalid_action_penalty", InvalidActionPenalty, InvalidActionPenaltyConfig)
