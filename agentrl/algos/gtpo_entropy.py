"""GTPO-entropy: Group **Token** Policy Optimization — entropy-weighted token rewards.

For one GRPO group, O⁺ / O⁻ are the valid correct / incorrect responses (``success``), H_{i,t}
the entropy of token t of response i under the sampling policy (detached), d_t / h_t the
number of O⁺ / O⁻ responses still active (longer than t) at position t:

    r̃⁺_{i,t} =  α1·r_i + α2 · ( H_{i,t}     / Σ_{k∈O⁺_t} H_{k,t}     ) · d_t        (Eqs. 3, 5)
    r̃⁻_{j,t} = −α1     − α2 · ( (1/H_{j,t}) / Σ_{k∈O⁻_t} (1/H_{k,t}) ) · h_t

High-entropy ("decision") tokens of correct answers gain reward, low-entropy tokens of wrong
answers (confident mistakes) lose most. The fractions sum to 1 over the active responses (if
they are all 0 the share is uniform), 1/H is 1/(H + 1e-6), r_i is ``episode_reward``. A response
is all policy tokens of an episode in order (its steps' completions concatenated), so t counts
across turns. The shaped rewards are then z-scored per group (Eq. 6):

* ``norm="joint"`` (default): one z-score over all valid tokens of the group;
* ``norm="split"``: O⁺ and O⁻ tokens separately, as the ports transcribe Eq. 6. Caution: this
  removes the ±α1 offset, so a wrong answer's token can get a positive advantage.

Output: one advantage per policy token (the batch's flat token axis, ``level="token"``).
Parameters (``GTPOEntropyConfig``): ``alpha1`` 1.0, ``alpha2`` 0.1, ``norm`` joint, ``singleton``
zero, ``eps`` 1e-6. Masked responses are not counted in d_t / h_t and get 0.

Paper: Tan et al., "GTPO and GRPO-S: Token and Sequence-Level Reward Shaping with Policy
Entropy", arXiv 2508.04349 (equations via independent ports; unverified against the PDF).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.stats import EPS, Singleton, dense_ids, group_normalize

INV_EPS = 1e-6


class GTPOEntropyConfig(AlgoConfig):
    alpha1: float = 1.0
    alpha2: float = 0.1
    norm: Literal["joint", "split"] = "joint"
    singleton: Singleton = "zero"
    eps: float = EPS


def entropy_shares(h: np.ndarray, correct: np.ndarray, key: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``share·count`` per item: H/ΣH·d for correct items, (1/H)/Σ(1/H)·h for incorrect ones.

    Sums and counts run over the masked items with the same ``key`` and correctness.
    """
    weight = np.where(correct, h, 1.0 / (h + INV_EPS))
    k, n = dense_ids(key, correct.astype(np.int64))
    k = np.where(mask, k, -1)
    kk = np.where(k >= 0, k, 0)
    total = np.bincount(kk, weights=np.where(mask, weight, 0.0), minlength=n)
    count = np.bincount(kk, weights=mask.astype(np.float64), minlength=n)
    share = np.where(
        total[kk] > 0, weight / np.where(total[kk] > 0, total[kk], 1.0), 1.0 / np.maximum(count[kk], 1.0)
    )
    return np.where(mask, share * count[kk], 0.0)


def token_positions(batch: StepBatch) -> np.ndarray:
    """Position of each policy token inside its episode's concatenated completions."""
    row_start = np.cumsum(batch.n_tokens) - batch.n_tokens  # first token of each row
    first_row = np.flatnonzero(batch.step == 0)
    episode_start = row_start[first_row][batch.traj]  # first token of the row's trajectory
    return np.arange(batch.token_row.size) - episode_start[batch.token_row]


def gtpo_entropy(batch: StepBatch, cfg: GTPOEntropyConfig) -> np.ndarray:
    batch.require_chain("gtpo_entropy")
    h = batch.token_entropy
    if h is None:
        raise ValueError("gtpo_entropy needs token entropies: build the batch with token_entropy=...")
    row = batch.token_row
    episode = batch.traj[row]  # chain: one episode per trajectory
    correct = batch.episode_success[episode]
    mask = batch.episode_valid[episode]
    group = batch.group[row]
    pos = token_positions(batch)
    slot, _ = dense_ids(group, pos)
    bonus = entropy_shares(h, correct, slot, mask)
    shaped = np.where(
        correct,
        cfg.alpha1 * batch.episode_reward[episode] + cfg.alpha2 * bonus,
        -cfg.alpha1 - cfg.alpha2 * bonus,
    )
    key = group if cfg.norm == "joint" else dense_ids(group, correct.astype(np.int64))[0]
    first_token = pos == 0  # one member per response for the singleton rule
    return group_normalize(shaped, key, mask, singleton=cfg.singleton, eps=cfg.eps, members=first_token)


register_estimator(
    "gtpo_entropy",
    gtpo_entropy,
    GTPOEntropyConfig,
    level="token",
    needs=frozenset({"token_entropy"}),
    chain_only=True,
)
