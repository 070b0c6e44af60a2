"""EMPG: Entropy-Modulated Policy Gradients (a per-step modifier on any step-level estimator).

    step entropy   H_{i,t} = mean over the step's policy tokens of the token entropy
    min-max        H̃_{i,t} = (H_{i,t} − min_batch H) / (max_batch H − min_batch H + ε)
    scaling        g_{i,t} = exp(−k·H̃_{i,t}) / mean_{steps in batch} exp(−k·H̃)       (batch mean of g = 1)
    clarity bonus  f_{i,t} = exp(−k'·H̃_{i,t+1})            (0 at the last step; mean over children on a tree)
    modulated      A_mod   = g·A + ζ·f,  then minus its batch mean (÷ batch std if ``normalize_std``)

A is the base estimator's per-step advantage (``base``: any step-level estimator, e.g. grpo,
gigpo, tree_grpo, with ``base_config``). Confident steps are amplified, uncertain ones
attenuated; a step followed by a confident step gets a bonus. All batch statistics run over
valid rows only; masked rows get 0.

Parameters (``EMPGConfig``): ``k`` 1.0, ``k_prime`` 1.0, ``zeta`` 0.1 (agentrl placeholders; the
paper grid-searched them per task), ``normalize_std`` False (the division is unverified),
``base`` "grpo", ``base_config`` {}.

Paper: "Harnessing Uncertainty: Entropy-Modulated Policy Gradients for Long-Horizon LLM
Agents", arXiv 2509.09265 (formulas from secondary restatements; unverified).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, get_estimator, register_estimator
from agentrl.algos.stats import EPS


class EMPGConfig(AlgoConfig):
    base: str = "grpo"
    base_config: dict[str, Any] = Field(default_factory=dict)
    k: float = 1.0
    k_prime: float = 1.0
    zeta: float = 0.1
    normalize_std: bool = False
    eps: float = EPS


def empg_modulate(batch: StepBatch, advantages: np.ndarray, cfg: EMPGConfig) -> np.ndarray:
    """Apply EMPG's scaling and clarity bonus to per-row ``advantages``."""
    adv = np.asarray(advantages, dtype=np.float64)
    if adv.shape != (batch.n_rows,):
        raise ValueError(f"EMPG needs one advantage per row ({batch.n_rows}), got shape {adv.shape}")
    valid = batch.valid
    out = np.zeros(batch.n_rows)
    if not valid.any():
        return out
    h = batch.step_entropy
    lo, hi = h[valid].min(), h[valid].max()
    h_norm = np.where(valid, (h - lo) / (hi - lo + cfg.eps), 0.0)  # masked rows: never read
    scale = np.exp(-cfg.k * h_norm)
    g = scale / scale[valid].mean()

    child = valid & (batch.parent >= 0)
    parent = np.where(child, batch.parent, 0)
    bonus_sum = np.bincount(
        parent, weights=np.where(child, np.exp(-cfg.k_prime * h_norm), 0.0), minlength=batch.n_rows
    )
    n_children = np.bincount(parent, weights=child.astype(np.float64), minlength=batch.n_rows)
    f = bonus_sum / np.maximum(n_children, 1.0)

    modulated = g * adv + cfg.zeta * f
    modulated -= modulated[valid].mean()
    if cfg.normalize_std:
        modulated /= modulated[valid].std(ddof=1) + cfg.eps if valid.sum() > 1 else 1.0
    out[valid] = modulated[valid]
    return out


def empg(batch: StepBatch, cfg: EMPGConfig) -> np.ndarray:
    base = get_estimator(cfg.base)
    if base.level != "step" or base.name == "empg":
        raise ValueError(f"EMPG modulates a step-level estimator, not {cfg.base!r}")
    return empg_modulate(batch, base(batch, cfg.base_config), cfg)


register_estimator(
    "empg",
    empg,
    EMPGConfig,
    needs=frozenset({"token_entropy"}),
    wraps=lambda cfg: (cfg.base, cfg.base_config),
)
