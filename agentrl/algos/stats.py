"""Vectorised group statistics shared by every estimator.

One rule for all of them (reference §0.2)::

    z(x) = (x − mean_G x) / (std_G x + ε)      unbiased std (N − 1, like ``torch.std``), ε = 1e-6

* zero std: the numerator is 0, so the advantage is 0 (ε prevents 0/0);
* a group with fewer than two valid members follows the ``singleton`` rule: ``"zero"``
  (agentrl default, no baseline means no signal) or ``"raw"`` (the reference code's mean 0,
  std 1, so the advantage is the raw score);
* masked rows (``mask`` False) enter no mean, std or count, and get exactly 0.

Everything is a handful of ``np.bincount`` calls over dense integer keys: no Python loop over
rows or groups.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

EPS = 1e-6
Mode = Literal["mean_std_norm", "mean_norm"]
Singleton = Literal["zero", "raw"]


def dense_ids(*keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Map each row's tuple of non-negative integer keys to a dense id in ``0..K-1``.

    A row with any negative key gets id −1 (no group). When the combined key space is small
    (≤ max(4·rows, 2²⁰)) the relabelling is a bincount over that space, O(rows + space) with no
    sort; otherwise it falls back to ``np.unique`` (a sort).
    """
    if not keys:
        raise ValueError("dense_ids needs at least one key column")
    n = len(keys[0])
    ok = np.ones(n, dtype=bool)
    combined = np.zeros(n, dtype=np.int64)
    total_span = 1
    for k in keys:
        k = np.asarray(k, dtype=np.int64)
        ok &= k >= 0
        span = max(int(k.max()) + 1 if n else 1, 1)
        total_span *= span
        if total_span >= 2**62:
            raise OverflowError("dense_ids: key space too large to combine into one int64")
        combined = combined * span + np.where(k >= 0, k, 0)
    out = np.full(n, -1, dtype=np.int64)
    if not ok.any():
        return out, 0
    picked = combined[ok]
    if total_span <= max(4 * n, 1 << 20):
        present = np.bincount(picked, minlength=total_span) > 0
        relabel = np.cumsum(present) - 1
        out[ok] = relabel[picked]
        return out, int(present.sum())
    uniq, inverse = np.unique(picked, return_inverse=True)
    out[ok] = inverse
    return out, len(uniq)


@dataclasses.dataclass(frozen=True)
class GroupStats:
    """Per-group mean, unbiased std and member count (arrays indexed by dense group id)."""

    mean: np.ndarray
    std: np.ndarray
    members: np.ndarray


def group_stats(
    x: np.ndarray,
    key: np.ndarray,
    mask: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    members: np.ndarray | None = None,
    n_groups: int | None = None,
) -> GroupStats:
    """Mean and unbiased std of ``x`` per group, over rows with ``mask`` True and ``key ≥ 0``.

    ``weight`` (frequency weights, default 1) lets one value stand for several rows, e.g. the
    step-weighted episode statistics of verl-agent (a trajectory's score counted once per step):
    ``μ = Σ w x / Σ w``, ``σ² = Σ w (x − μ)² / (Σ w − 1)``. ``members`` is each row's
    contribution to the member count that the singleton rule looks at (default 1 per row).
    """
    x, key, mask = _check(x, key, mask)
    grouped = mask & (key >= 0)
    k = np.where(grouped, key, 0)
    if n_groups is None:
        n_groups = int(key.max()) + 1 if key.size else 0
    n_groups = max(n_groups, 1)
    w = grouped.astype(np.float64) if weight is None else np.where(grouped, weight, 0.0).astype(np.float64)
    cnt = grouped.astype(np.float64) if members is None else np.where(grouped, members, 0.0)
    sw = np.bincount(k, weights=w, minlength=n_groups)
    mean = np.bincount(k, weights=w * x, minlength=n_groups) / np.maximum(sw, 1e-300)
    centred = x - mean[k]
    var = np.bincount(k, weights=w * centred * centred, minlength=n_groups) / np.maximum(sw - 1.0, 1.0)
    return GroupStats(mean=mean, std=np.sqrt(var), members=np.bincount(k, weights=cnt, minlength=n_groups))


def normalize(
    x: np.ndarray,
    key: np.ndarray,
    mask: np.ndarray,
    stats: GroupStats,
    *,
    mode: Mode = "mean_std_norm",
    singleton: Singleton = "zero",
    eps: float = EPS,
) -> np.ndarray:
    """Normalise each row of ``x`` by its group's ``stats``.

    ``mean_std_norm``: ``(x − μ_g) / (σ_g + ε)``; ``mean_norm``: ``x − μ_g``. A row of a group
    with fewer than two members, or with ``key < 0`` (a group of its own), follows ``singleton``:
    ``"zero"`` → 0, ``"raw"`` → the reference's mean 0 / std 1. Rows with ``mask`` False → 0.
    """
    x, key, mask = _check(x, key, mask)
    if mode not in ("mean_std_norm", "mean_norm"):
        raise ValueError(f"unknown mode {mode!r}: use 'mean_std_norm' or 'mean_norm'")
    if singleton not in ("zero", "raw"):
        raise ValueError(f"unknown singleton rule {singleton!r}: use 'zero' or 'raw'")
    if x.size == 0:
        return np.zeros_like(x)
    grouped = mask & (key >= 0)
    k = np.where(grouped, key, 0)
    multi = grouped & (stats.members[k] >= 2)
    centred = x - stats.mean[k]
    if mode == "mean_std_norm":
        normalised = centred / (stats.std[k] + eps)
        raw = x / (1.0 + eps)
    else:
        normalised, raw = centred, x
    lone = raw if singleton == "raw" else 0.0
    return np.where(multi, normalised, np.where(mask, lone, 0.0))


def group_normalize(
    x: np.ndarray,
    key: np.ndarray,
    mask: np.ndarray,
    *,
    mode: Mode = "mean_std_norm",
    singleton: Singleton = "zero",
    eps: float = EPS,
    weight: np.ndarray | None = None,
    members: np.ndarray | None = None,
    n_groups: int | None = None,
) -> np.ndarray:
    """:func:`group_stats` then :func:`normalize` on the same rows (the usual GRPO z-score)."""
    stats = group_stats(x, key, mask, weight=weight, members=members, n_groups=n_groups)
    return normalize(x, key, mask, stats, mode=mode, singleton=singleton, eps=eps)


def _check(x, key, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    key = np.asarray(key, dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)
    if not (x.shape == key.shape == mask.shape) or x.ndim != 1:
        raise ValueError(
            f"x, key and mask must be 1-D of one shape, got {x.shape}, {key.shape}, {mask.shape}"
        )
    return x, key, mask


def group_min(x: np.ndarray, key: np.ndarray, mask: np.ndarray, n_groups: int) -> np.ndarray:
    """Minimum of ``x`` over the masked rows of each group; +inf for a group with none."""
    out = np.full(n_groups, np.inf)
    sel = np.asarray(mask, dtype=bool) & (np.asarray(key) >= 0)
    np.minimum.at(out, np.asarray(key)[sel], np.asarray(x, dtype=np.float64)[sel])
    return out


def segment_starts(seg: np.ndarray) -> np.ndarray:
    """Row index where each run of equal, contiguous ``seg`` values starts."""
    seg = np.asarray(seg)
    if seg.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])


def discounted_returns(
    reward: np.ndarray, seg: np.ndarray, pos: np.ndarray, gamma: float, levels: list[np.ndarray] | None = None
) -> np.ndarray:
    """``R_t = r_t + γ·R_{t+1}`` within each contiguous segment (one trajectory, steps in order).

    ``pos`` is each row's position in its segment (0, 1, …); ``levels`` optionally gives the rows
    at each position (:attr:`StepBatch.depth_levels`, cached per batch). The recursion runs
    backwards over positions, one vector operation per position across all trajectories at
    once: O(rows) exact arithmetic (no γ^{−t} rescaling that loses precision on long episodes)
    with only max-length Python iterations.
    """
    reward = np.asarray(reward, dtype=np.float64)
    seg = np.asarray(seg)
    n = reward.size
    returns = reward.copy()
    if n == 0 or gamma == 0.0:
        return returns
    pos = np.asarray(pos, dtype=np.int64)
    starts = segment_starts(seg)
    length = int(pos.max()) + 1
    if starts.size * length <= 4 * n:
        # Dense [position, trajectory] grid: one contiguous vector op per position.
        t = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
        grid = np.zeros((length, starts.size))
        grid[pos, t] = reward
        for p in range(length - 2, -1, -1):
            grid[p] += gamma * grid[p + 1]
        return grid[pos, t]
    has_next = np.zeros(n, dtype=bool)
    has_next[:-1] = seg[1:] == seg[:-1]
    if levels is None:
        small = pos.astype(np.int16) if pos.max() < 2**15 else pos  # int16 sorts by radix, O(n)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(pos[order], np.arange(int(pos.max()) + 2))
        levels = [order[bounds[p] : bounds[p + 1]] for p in range(len(bounds) - 1)]
    for rows in levels[-2::-1]:
        rows = rows[has_next[rows]]
        returns[rows] += gamma * returns[rows + 1]
    return returns
