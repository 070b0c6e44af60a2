"""GTPO-turn: Group **Turn** Policy Optimization (turn rewards, discounted turn returns).

    turn reward     (Eq. 5)   r_{i,j} = r^acc_{i,j} + r^fmt_{i,j}
    turn return     (Eq. 6)   R_{i,j} = Σ_{m=j}^{T_i} γ^{m−j} r_{i,m}
    turn advantage  (Eq. 7)   A_{i,j} = (R_{i,j} − mean_S R) / (std_S R + ε)     → every token of turn j

r^acc is the env's step reward (``reward``: correctness lands on the final turn), plus GTPO's
partial credit for failed rollouts when the ``gtpo_partial_credit`` shaper runs first
(:mod:`agentrl.algos.shapers.partial_credit`). r^fmt = −``format_penalty`` on every turn whose
action was invalid (``action_valid`` False; the paper's notion of an offending turn is
unverified, agentrl uses the env's verdict).

S, the normalisation set (turn-weighted either way): ``norm_scope="group"`` (default) — all
turns of the valid rollouts of one GRPO group; ``"batch"`` — all valid turns of the batch (the
SkyRL port). A group with fewer than two valid rollouts follows ``singleton``.

Parameters (``GTPOTurnConfig``): ``gamma`` 0.9, ``format_penalty`` 0.1, ``norm_scope`` group,
``singleton`` zero, ``eps`` 1e-6. Masked rollouts enter no statistic and get 0.

Paper: Ding et al., "Empowering Multi-Turn Tool-Integrated (Agentic) Reasoning with Group Turn Policy
Optimization", arXiv 2511.14846 (formulas via independent ports; unverified against the PDF).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.shapers.penalty import penalize_invalid_actions
from agentrl.algos.stats import EPS, Singleton, discounted_returns, group_normalize


class GTPOTurnConfig(AlgoConfig):
    gamma: float = Field(default=0.9, ge=0.0, le=1.0)
    format_penalty: float = Field(default=0.1, ge=0.0)
    norm_scope: Literal["group", "batch"] = "group"
    singleton: Singleton = "zero"
    eps: float = EPS


def gtpo_turn(batch: StepBatch, cfg: GTPOTurnConfig) -> np.ndarray:
    batch.require_chain("gtpo_turn")
    batch = penalize_invalid_actions(batch, cfg.format_penalty)
    returns = discounted_returns(batch.reward, batch.traj, batch.step, cfg.gamma, batch.depth_levels)
    key = batch.group if cfg.norm_scope == "group" else np.zeros(batch.n_rows, dtype=np.int64)
    return group_normalize(
        returns,
        key,
        batch.valid,
        mode="mean_std_norm",
        singleton=cfg.singleton,
        eps=cfg.eps,
        members=batch.leaf,
    )


register_estimator("gtpo_turn", gtpo_turn, GTPOTurnConfig, chain_only=True)
