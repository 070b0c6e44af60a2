"""GRPO-S: sequence-level entropy reward shaping (the sequence form of GTPO-entropy).

    Ĥ_i  = mean_t H_{i,t}                                                           (Eq. 8)
    r̂⁺_i =  β1·r_i + β2 · ( Ĥ_i     / Σ_{k∈O⁺} Ĥ_k     ) · |O⁺|                    (Eq. 9)
    r̂⁻_j = −β1     − β2 · ( (1/Ĥ_j) / Σ_{k∈O⁻} (1/Ĥ_k) ) · |O⁻|
    A_i  = GRPO z-score of r̂ within the group

O⁺ / O⁻: valid correct / incorrect episodes of a group (``success``); H the per-token entropy
under the sampling policy over all policy tokens of the episode; 1/Ĥ is 1/(Ĥ + 1e-6). Every
step of an episode gets A_i (a sequence-level advantage).

Parameters (``GRPOSConfig``): ``beta1`` 1.0, ``beta2`` 0.1 (by analogy with α1, α2; unverified),
``singleton`` zero, ``eps``. Masked episodes are not counted in |O±| and get 0.

Paper: Tan et al., "GTPO and GRPO-S: Token and Sequence-Level Reward Shaping with Policy
Entropy", arXiv 2508.04349.
"""

from __future__ import annotations

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.grpo import episode_advantages
from agentrl.algos.gtpo_entropy import entropy_shares
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.stats import EPS, Singleton


class GRPOSConfig(AlgoConfig):
    beta1: float = 1.0
    beta2: float = 0.1
    singleton: Singleton = "zero"
    eps: float = EPS


def grpo_s(batch: StepBatch, cfg: GRPOSConfig) -> np.ndarray:
    batch.require_chain("grpo_s")
    if batch.token_entropy is None:
        raise ValueError("grpo_s needs token entropies: build the batch with token_entropy=...")
    ep = batch.episode_rows
    tokens = np.bincount(batch.traj, weights=batch.n_tokens, minlength=ep.size)
    h_sum = np.bincount(batch.traj[batch.token_row], weights=batch.token_entropy, minlength=ep.size)
    h_mean = h_sum / np.maximum(tokens, 1)
    correct, valid, group = batch.episode_success, batch.episode_valid, batch.group[ep]
    bonus = entropy_shares(h_mean, correct, group, valid)
    shaped = np.where(
        correct, cfg.beta1 * batch.episode_reward + cfg.beta2 * bonus, -cfg.beta1 - cfg.beta2 * bonus
    )
    adv = episode_advantages(batch, shaped, group, singleton=cfg.singleton, eps=cfg.eps)
    return batch.credit(adv)


register_estimator("grpo_s", grpo_s, GRPOSConfig, needs=frozenset({"token_entropy"}), chain_only=True)
