"""Token-level PPO-clip policy loss, with optional dual clip, KL to a reference and entropy bonus.

For every policy token t (loss mask 1) with advantage A_t, behaviour log-probability
``old_t = log π_behav(a_t)`` (what the sampler returned) and current ``logp_t = log π_θ(a_t)``::

    ρ_t      = exp(logp_t − old_t)
    pg_t     = max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 − ε_low, 1 + ε_high))             (PPO, Schulman 2017)
    pg_t     = min(pg_t, −c·A_t)            if A_t < 0 and dual_clip c > 1       (Ye et al. 2020)
    pg_t     = λ⁻·pg_t                      if A_t < 0 (negative_weight λ⁻; 1 by default)
    kl_t     = k1: logp − ref | k2: ½(logp − ref)² | k3: e^{ref−logp} − (ref − logp) − 1   (Schulman's
               estimators of KL(π_θ ‖ π_ref); k3 is verl's "low_var_kl", clamped to [−10, 10])
    ℓ_t      = pg_t + β_kl·kl_t − β_ent·H_t      (H_t: entropy of π_θ at position t)

**Negative weight.** λ⁻ < 1 weighs the tokens of worse-than-average samples less than those of
better ones: a biased estimator that leans toward reinforcing successes (positive sample
reinforcement, which sharpens: it raises pass@1 and lowers pass@k; Zhu et al. 2025, "The
Surprising Effectiveness of Negative Reinforcement in LLM Reasoning"; Arnal et al. 2025,
"Asymmetric REINFORCE"). Where a warm start already knows the task and fails by sampling noise, a
failed sample is one bad token among dozens of right ones that PPO pushes down with it; measured on
the calculator (agentrl/train/README.md, "Learning checks") that part of the gradient is mostly
noise. The positive and negative parts are clipped separately, so λ⁻ = 1 is exactly PPO.

Aggregation is decided by a per-token weight ``w_t`` computed once per optimizer step over the
*whole* mini-batch (:func:`loss_weights`), so splitting the mini-batch into micro-batches and
summing their losses gives exactly the full-batch loss and gradient::

    token-mean : w_t = m_t / Σ_all m                (every policy token counts the same)
    seq-mean   : w_t = m_t / (|seq(t)| · #seqs)     (every sequence counts the same, then its tokens)

    loss = Σ_t w_t · ℓ_t

The denominators (Σ_all m, #seqs) are additive over a split of the rows
(:func:`loss_normalizer`): data-parallel ranks each train a slice of the mini-batch and
all-reduce (sum) their normalizers, so every rank weighs its tokens as the whole mini-batch does.
"""

from __future__ import annotations

import torch

from agentrl.train.config import Aggregation, KLEstimator, OffPolicy, PolicyLossConfig


def loss_normalizer(mask: torch.Tensor, aggregation: Aggregation) -> torch.Tensor:
    """The mini-batch denominator of ``aggregation`` over these rows (a float32 scalar): Σ m for
    token-mean, the number of rows with a policy token for seq-mean. It adds up over a split of
    the rows."""
    mask = mask.to(torch.float32)
    if aggregation == "token-mean":
        return mask.sum()
    if aggregation == "seq-mean":
        return (mask.sum(dim=-1) > 0).sum().to(torch.float32)
    raise ValueError(f"unknown aggregation {aggregation!r}; choose token-mean or seq-mean")


def loss_weights(mask: torch.Tensor, aggregation: Aggregation, normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token weights ``w`` (same shape as ``mask``: rows × tokens) for one whole mini-batch.

    Rows without any policy token get weight 0 and do not count as sequences. ``normalizer``:
    the whole mini-batch's :func:`loss_normalizer` when ``mask`` holds only a slice of it (one
    data-parallel rank's rows); by default these rows' own.
    """
    if normalizer is None:
        normalizer = loss_normalizer(mask, aggregation)
    mask = mask.to(torch.float32)
    normalizer = normalizer.to(torch.float32).clamp(min=1.0)
    if aggregation == "token-mean":
        return mask / normalizer
    return mask / mask.sum(dim=-1, keepdim=True).clamp(min=1.0) / normalizer


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: KLEstimator) -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from the sampled token's log-probabilities."""
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if estimator == "k3":
        log_ratio = (ref_logp - logp).clamp(-20.0, 20.0)
        return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"unknown KL estimator {estimator!r}; choose k1, k2 or k3")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    config: PolicyLossConfig,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    advantages_neg: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted PPO-clip loss of one (micro-)batch and its diagnostics.

    ``advantages_neg`` (optional): the negative part of a split advantage (``advantages`` then
    holds the positive part); the clipped term is taken of each part and summed, which is what
    training every path of a deduplicated tree separately gives (:mod:`agentrl.rollout.batch`).

    All tensors have the same shape; ``weights`` comes from :func:`loss_weights` (0 on prompt,
    observation and padding tokens). Returns ``(loss, stats)`` where each stat is a weighted
    *sum* over this micro-batch (so micro-batch stats add up to the mini-batch mean):
    ``pg_loss``, ``kl`` (to the reference, when given), ``entropy``, ``clip_frac`` (tokens whose
    ratio was clipped), ``dual_clip_frac``, ``approx_kl`` (k3 of behaviour vs current policy).
    """
    if config.kl_coef > 0 and ref_logp is None:
        raise ValueError("kl_coef > 0 needs the reference log-probabilities (ref_logp)")
    if config.entropy_coef > 0 and entropy is None:
        raise ValueError("entropy_coef > 0 needs the per-token entropy")
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)

    def clipped_pg(adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        unclipped = -adv * ratio
        clipped = -adv * ratio.clamp(1.0 - config.clip_low, 1.0 + config.clip_high)
        pg = torch.maximum(unclipped, clipped)
        clip_active = clipped > unclipped
        dual_active = torch.zeros_like(clip_active)
        if config.dual_clip is not None:
            cap = -config.dual_clip * adv
            dual_active = (adv < 0) & (pg > cap)
            pg = torch.where(adv < 0, torch.minimum(pg, cap), pg)
        return pg, clip_active, dual_active

    # pg(A⁺) + λ⁻·pg(A⁻): the split of a deduplicated tree's advantage (exact for any ratio), or the
    # sign of a chain's; pg is positively homogeneous in A, so λ⁻ can scale the advantage.
    negative = advantages.clamp(max=0.0) + (0.0 if advantages_neg is None else advantages_neg)
    pg, clip_active, dual_active = clipped_pg(advantages.clamp(min=0.0))
    pg_neg, clip_neg, dual_neg = clipped_pg(config.negative_weight * negative)
    pg, clip_active, dual_active = pg + pg_neg, clip_active | clip_neg, dual_active | dual_neg
    clip_active, dual_active = clip_active.float(), dual_active.float()

    per_token = pg
    stats = {
        "pg_loss": (weights * pg).sum().detach(),
        "clip_frac": (weights * clip_active).sum().detach(),
        "dual_clip_frac": (weights * dual_active).sum().detach(),
        "approx_kl": (weights * kl_penalty(logp.detach(), old_logp, "k3")).sum(),
    }
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp, config.kl_estimator)
        stats["kl"] = (weights * kl).sum().detach()
        if config.kl_coef > 0:
            per_token = per_token + config.kl_coef * kl
    if entropy is not None:
        stats["entropy"] = (weights * entropy).sum().detach()
        if config.entropy_coef > 0:
            per_token = per_token - config.entropy_coef * entropy
    return (weights * per_token).sum(), stats


def off_policy_weights(
    prox_logp: torch.Tensor, behav_logp: torch.Tensor, mode: OffPolicy, cap: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """The behaviour weight ``v`` per token (see the module docstring) and its statistics.

    ``prox_logp`` / ``behav_logp``: log-probabilities of the sampled tokens under the learner's
    pre-update policy and the sampler's, one entry per policy token (any shape). Returns ``v``
    (1 everywhere for ``none``) and ``is_weight_mean``, ``is_weight_max``, ``is_capped_frac``,
    ``behav_prox_kl`` (statistics of the raw weight u, whatever the mode).
    """
    log_u = (prox_logp - behav_logp).clamp(-20.0, 20.0)
    u = torch.exp(log_u)
    over = u > cap
    if mode == "none":
        v = torch.ones_like(u)
    elif mode == "tis":
        v = u.clamp(max=cap)
    elif mode == "decoupled":
        v = torch.where(over, torch.zeros_like(u), u)
    else:
        raise ValueError(f"unknown off_policy {mode!r}; choose none, tis or decoupled")
    n = max(u.numel(), 1)
    stats = {
        "is_weight_mean": float(u.sum()) / n,
        "is_weight_max": float(u.max()) if u.numel() else 1.0,
        "is_capped_frac": float(over.sum()) / n,
        "behav_prox_kl": float((u - 1.0 - log_u).sum()) / n,
    }
    return v, stats


def token_logprobs_and_entropy(
    logits: torch.Tensor, targets: torch.Tensor, with_entropy: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log π(target)`` and the entropy ``H = logsumexp(z) − Σ softmax(z)·z`` at each position.

    ``logits`` is (..., vocab) in any dtype; the computation runs in float32.
    """
    logits = logits.float()
    log_norm = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_norm
    entropy = None
    if with_entropy:
        probs = torch.softmax(logits, dim=-1)
        entropy = log_norm - (probs * logits).sum(dim=-1)
    return logp, entropy
