"""Tree-GRPO: intra-tree + inter-tree group advantages for rollout trees.

    A_intra(ℓ) = (R(ℓ) − mean_{tree(ℓ)} R) / (std_{tree(ℓ)} R + ε)
    A_inter(ℓ) = (R(ℓ) − mean_{all leaves of the prompt} R) / (std_{prompt} R + ε)
    A_tree(ℓ)  =  A_intra(ℓ) + A_inter(ℓ)                                     (Eqs. 6–7)

over the valid leaves ℓ (episodes); "prompt" is the GRPO ``group``, "tree" the ``tree`` column.
Variants: ``tree_intra`` (intra term only) and ``tree_2norm`` (prompt z-score, then a second
z-score of that within each tree; sequential, not summed).

**Credit on a deduplicated tree.** Materialised training (each kept leaf one sequence) gives a
node v shared by k leaves k copies of its tokens, so its total weight is
``W(v) = Σ_{ℓ below v} A_tree(ℓ)``. A tree batch stores each node once and every row gets
W(v) — the sum, not the mean — which makes the policy-gradient term identical to training each
root-to-leaf path (tests/algos/test_tree_grpo.py checks this on a torch policy). Use
:func:`node_credit` for the split ``W⁺``/``W⁻`` that keeps PPO clipping exact and for
``n_desc`` (per-token weight for KL/entropy terms); the loss denominator is the duplicated token
count ``Σ_v n_desc(v)·|tokens(v)|``.

Parameters (``TreeGRPOConfig``): ``mode`` (both levels) ``mean_std_norm`` | ``mean_norm``;
``singleton`` ``zero`` (a tree or prompt with one valid leaf gives 0) | ``raw`` (reference).
Masked leaves enter no statistic and get 0; a node with no valid leaf below gets 0.

Paper: Ji, Ma, Wang, Chen, Chu, Wu, "Tree Search for LLM Agent Reinforcement Learning",
arXiv 2509.21240 (ICLR 2026). Reference code: AMAP-ML/Tree-GRPO ``ray_trainer_ts.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_estimator
from agentrl.algos.stats import EPS, Mode, Singleton, group_normalize


class TreeGRPOConfig(AlgoConfig):
    mode: Mode = "mean_std_norm"
    singleton: Singleton = "zero"
    eps: float = EPS


def _z(batch: StepBatch, x: np.ndarray, key: np.ndarray, cfg: TreeGRPOConfig) -> np.ndarray:
    return group_normalize(x, key, batch.episode_valid, mode=cfg.mode, singleton=cfg.singleton, eps=cfg.eps)


def tree_leaf_advantages(batch: StepBatch, cfg: TreeGRPOConfig, variant: str = "sum") -> np.ndarray:
    """Per-episode (leaf) advantage: ``sum`` (Tree-GRPO), ``intra`` or ``2norm``."""
    ep = batch.episode_rows
    reward, prompt, tree = batch.episode_reward, batch.group[ep], batch.tree[ep]
    if variant == "intra":
        return _z(batch, reward, tree, cfg)
    inter = _z(batch, reward, prompt, cfg)
    if variant == "2norm":
        return _z(batch, inter, tree, cfg)
    if variant != "sum":
        raise ValueError(f"unknown Tree-GRPO variant {variant!r}")
    return inter + _z(batch, reward, tree, cfg)


@dataclasses.dataclass(frozen=True)
class NodeCredit:
    """Per-row weights for a deduplicated tree (reference §4.3).

    ``w`` = Σ of descendant leaf advantages; ``w_pos``/``w_neg`` = the positive / negative parts
    of that sum, so that ``Σ_ℓ min(ρA_ℓ, clip(ρ)A_ℓ) = w_pos·min(ρ, clip ρ) + w_neg·max(ρ, clip ρ)``
    holds for any ratio ρ; ``n_desc`` = valid leaves below (per-token weight of A-free terms).
    """

    w: np.ndarray
    w_pos: np.ndarray
    w_neg: np.ndarray
    n_desc: np.ndarray


def node_credit(batch: StepBatch, leaf_advantages: np.ndarray) -> NodeCredit:
    adv = np.asarray(leaf_advantages, dtype=np.float64)
    valid = batch.episode_valid
    return NodeCredit(
        w=batch.credit(adv),
        w_pos=batch.credit(np.maximum(adv, 0.0)),
        w_neg=batch.credit(np.minimum(adv, 0.0)),
        n_desc=batch.credit(valid.astype(np.float64)).round().astype(np.int64),
    )


def tree_grpo(batch: StepBatch, cfg: TreeGRPOConfig) -> np.ndarray:
    return batch.credit(tree_leaf_advantages(batch, cfg, "sum"))


def tree_intra(batch: StepBatch, cfg: TreeGRPOConfig) -> np.ndarray:
    return batch.credit(tree_leaf_advantages(batch, cfg, "intra"))


def tree_2norm(batch: StepBatch, cfg: TreeGRPOConfig) -> np.ndarray:
    return batch.credit(tree_leaf_advantages(batch, cfg, "2norm"))


# Tree-only: on chain rollouts every tree holds one leaf, so the intra-tree term is always a
# singleton (tree_grpo would silently be GRPO, tree_intra all zeros).
register_estimator("tree_grpo", tree_grpo, TreeGRPOConfig, tree_only=True)
register_estimator("tree_intra", tree_intra, TreeGRPOConfig, tree_only=True)
register_estimator("tree_2norm", tree_2norm, TreeGRPOConfig, tree_only=True)
