"""GiGPO: Group-in-Group Policy Optimization (episode + anchor-state step advantages).

    step return   (Eq. 5)  R_t = r_t + γ·R_{t+1},   R_{T+1} = 0   (per trajectory, no bootstrap)
    episode level (Eq. 3)  A^E(τ_i) = (R(τ_i) − mean_G R(τ)) / F_norm
    anchor group  (Eq. 6)  G^S(s̃) = {(a_t^(i), R_t^(i)) : state_key(s_t^(i)) = s̃, i ∈ group, any t}
    step level    (Eq. 7)  A^S(a_t^(i)) = (R_t^(i) − mean_{G^S} R) / F_norm
    combined      (Eq. 8)  A = A^E + ω · A^S
    F_norm = std + ε (``mean_std_norm``)  or  1 (``mean_norm``)

R(τ) is the episode score (``episode_reward``, which the rollout engine sets to Σ r_t); R_t comes
from the ``reward`` column. Anchor groups form only inside one GRPO group and ignore the time
step (see :mod:`agentrl.algos.anchors`); a row without a state key, or alone in its anchor
group, gets A^S = 0, so with no repeated states GiGPO is GRPO.

Parameters (``GiGPOConfig``, defaults from the reference scripts unless noted):

* ``gamma`` 0.95, ``omega`` 1.0 (``step_advantage_w``).
* ``mode`` ``mean_std_norm`` | ``mean_norm``; ``step_mode`` (default: same as ``mode``).
* ``episode_stats``: ``trajectory`` (default, paper Eq. 3: one value per trajectory) or ``step``
  (the reference code's ``compute_mean_std_cross_steps=True``: every step row enters the group's
  mean/std, so long trajectories weigh more — verl-agent #138).
* ``anchor_match`` ``exact`` | ``similarity``; ``similarity_thresh`` 0.95.
* ``invalid_penalty`` 0.1 with ``penalty_mode``:
  ``row`` (reference ``apply_invalid_action_penalty``): an invalid row's episode score becomes
  R(τ) − coef and its *already discounted* R_t becomes R_t − coef, so earlier steps are not
  affected; with ``episode_stats="trajectory"`` the group statistics use the unpenalised scores
  and the offending row's A^E is lowered by coef *after* normalisation (in ``mean_norm`` this is
  the reference's number; in ``mean_std_norm`` it keeps the penalty at its own scale instead of
  dividing it by a std it never entered, which is −coef/ε in an all-equal group).
  ``discounted``: −coef is a step reward *before* discounting
  (:func:`agentrl.algos.shapers.penalty.penalize_invalid_actions`), so it reaches earlier steps
  and the episode score drops by coef per invalid step.
* ``singleton`` (episode level) ``zero`` | ``raw``; a singleton anchor group always gives 0.

Masked rows (``valid`` False: infra failures) enter no statistic and get 0.

Paper: Feng, Xue, Liu, An, "Group-in-Group Policy Optimization for LLM Agent Training",
arXiv 2505.10978 (NeurIPS 2025). Reference code: langfengQ/verl-agent ``gigpo/core_gigpo.py``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from agentrl.algos.anchors import exact_anchors, similarity_anchors
from agentrl.algos.batch import StepBatch
from agentrl.algos.grpo import EpisodeStats
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.shapers.penalty import penalize_invalid_actions
from agentrl.algos.stats import (
    EPS,
    Mode,
    Singleton,
    discounted_returns,
    group_normalize,
    group_stats,
    normalize,
)


class GiGPOConfig(AlgoConfig):
    gamma: float = Field(default=0.95, ge=0.0, le=1.0)
    omega: float = 1.0
    mode: Mode = "mean_std_norm"
    step_mode: Mode | None = None
    episode_stats: EpisodeStats = "trajectory"
    anchor_match: Literal["exact", "similarity"] = "exact"
    similarity_thresh: float = Field(default=0.95, gt=0.0, lt=1.0)
    invalid_penalty: float = Field(default=0.1, ge=0.0)
    penalty_mode: Literal["row", "discounted"] = "row"
    singleton: Singleton = "zero"
    eps: float = EPS


def step_returns(batch: StepBatch, gamma: float) -> np.ndarray:
    """Discounted return of every step within its trajectory (Eq. 5)."""
    batch.require_chain("discounted step returns")
    return discounted_returns(batch.reward, batch.traj, batch.step, gamma, batch.depth_levels)


def gigpo_parts(batch: StepBatch, cfg: GiGPOConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(A^E, A^S)`` per row; :func:`gigpo` returns ``A^E + ω·A^S``."""
    batch.require_chain("gigpo")
    coef = cfg.invalid_penalty
    row_penalty = np.zeros(batch.n_rows)
    if cfg.penalty_mode == "discounted":
        batch = penalize_invalid_actions(batch, coef)
    else:
        row_penalty = coef * (~batch.action_valid)
    returns = step_returns(batch, cfg.gamma) - row_penalty
    score = batch.episode_reward[batch.traj]  # chain: the episode of a row is its trajectory
    row_score = score - row_penalty

    if cfg.episode_stats == "trajectory":
        # One value per trajectory enters the statistics, so the row penalty cannot: it is
        # subtracted after normalisation. Dividing it by a std it never entered would blow up
        # in a group whose episodes all scored the same (std 0 → −coef/ε).
        ep = batch.episode_rows
        stats = group_stats(
            batch.episode_reward, batch.group[ep], batch.episode_valid, n_groups=batch.n_groups
        )
        a_episode = (
            normalize(
                score, batch.group, batch.valid, stats, mode=cfg.mode, singleton=cfg.singleton, eps=cfg.eps
            )
            - row_penalty * batch.valid
        )
    else:
        stats = group_stats(row_score, batch.group, batch.valid, members=batch.leaf, n_groups=batch.n_groups)
        a_episode = normalize(
            row_score, batch.group, batch.valid, stats, mode=cfg.mode, singleton=cfg.singleton, eps=cfg.eps
        )

    if cfg.anchor_match == "exact":
        anchor, n_anchor = exact_anchors(batch)
    else:
        anchor, n_anchor = similarity_anchors(batch, cfg.similarity_thresh)
    a_step = group_normalize(
        returns,
        anchor,
        batch.valid,
        mode=cfg.step_mode or cfg.mode,
        singleton="zero",
        eps=cfg.eps,
        n_groups=n_anchor,
    )
    return a_episode, a_step


def gigpo(batch: StepBatch, cfg: GiGPOConfig) -> np.ndarray:
    a_episode, a_step = gigpo_parts(batch, cfg)
    return a_episode + cfg.omega * a_step


register_estimator("gigpo", gigpo, GiGPOConfig, chain_only=True)
