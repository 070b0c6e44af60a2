"""Shapers → estimator → advantages, and the per-token expansion the trainer consumes.

Order (reference §9): reward shapers (group-level hooks that see all G rollouts: OTC, GTPO
partial credit, invalid-action penalty, turn rewards) rewrite the batch; one estimator turns it
into per-step (or per-token) advantages with masked rows excluded; modifiers such as EMPG are
estimators that wrap a base estimator. Advantages are computed on the batch as collected —
**before** any padding or row duplication, which would bias the group statistics.

    pipe = Pipeline("gigpo", {"gamma": 0.9}, shapers=[get_shaper("otc_grpo")])
    out = pipe(batch)                     # Advantages
    out.token                             # one value per policy token, steps in batch order
    expand_to_tokens(out.step, batch.n_tokens, pad_to=512)   # [rows, 512] for padded layouts
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, Estimator, Requirements, get_estimator, requirements

Shaper = Callable[[StepBatch], StepBatch]


def expand_to_tokens(
    step_values: np.ndarray, lengths: np.ndarray, *, pad_to: int | None = None
) -> np.ndarray:
    """Copy each step's value to each of its ``lengths[i]`` policy tokens.

    Returns the flat concatenation (``lengths.sum()`` values, steps in order), or with
    ``pad_to`` a ``[n_steps, pad_to]`` array, zero past each step's length.
    """
    step_values = np.asarray(step_values, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if step_values.shape != lengths.shape or step_values.ndim != 1:
        raise ValueError(f"one length per step value needed, got {step_values.shape} and {lengths.shape}")
    if lengths.size and lengths.min() < 0:
        raise ValueError("lengths must be non-negative")
    if pad_to is None:
        return np.repeat(step_values, lengths)
    if lengths.size and lengths.max() > pad_to:
        raise ValueError(f"a step has {int(lengths.max())} tokens, more than pad_to={pad_to}")
    return np.where(np.arange(pad_to)[None, :] < lengths[:, None], step_values[:, None], 0.0)


@dataclasses.dataclass(frozen=True)
class Advantages:
    """What the trainer takes from a pipeline run.

    ``step``: one advantage per row (None for token-level estimators); ``token``: one per policy
    token on the batch's flat token axis (``batch.n_tokens`` per row, rows in order);
    ``mask`` / ``token_mask``: False for infra-failed rows, whose tokens must get loss mask 0;
    ``batch``: the shaped batch (shaped rewards for logging, ``success`` untouched).
    """

    batch: StepBatch
    step: np.ndarray | None
    token: np.ndarray
    mask: np.ndarray
    token_mask: np.ndarray


class Pipeline:
    """``shapers`` (applied in order) then ``estimator`` (a registry name or an :class:`Estimator`)."""

    def __init__(
        self,
        estimator: str | Estimator,
        config: AlgoConfig | dict[str, Any] | None = None,
        shapers: Sequence[Shaper] = (),
    ):
        self.estimator = get_estimator(estimator) if isinstance(estimator, str) else estimator
        self.config = self.estimator.config(config)
        self.shapers = list(shapers)
        self.requirements: Requirements = requirements(self.estimator, self.config, self.shapers)

    @property
    def needs(self) -> frozenset[str]:
        """Batch inputs the shapers and estimator read: ``"token_entropy"``, ``"action_texts"``."""
        return self.requirements.needs

    def shape(self, batch: StepBatch) -> StepBatch:
        for shaper in self.shapers:
            batch = shaper(batch)
            if not isinstance(batch, StepBatch):
                raise TypeError(f"shaper {shaper!r} returned {type(batch).__name__}, not a StepBatch")
        return batch

    def __call__(self, batch: StepBatch) -> Advantages:
        shaped = self.shape(batch)
        values = self.estimator(shaped, self.config)
        token_mask = np.repeat(shaped.valid, shaped.n_tokens)
        if self.estimator.level == "token":
            return Advantages(shaped, None, values, shaped.valid, token_mask)
        return Advantages(shaped, values, expand_to_tokens(values, shaped.n_tokens), shaped.valid, token_mask)
