"""Training rows to micro-batches packed by token count, and padded tensors.

The rows themselves (:class:`~agentrl.rollout.batch.TokenRow`) are built once, by
:class:`agentrl.rollout.batch.RolloutBatch`, from the recorded steps. Positions are aligned with
``input_ids``: ``mask[i]`` (the trained copies of token i, 0 for prompt, observation and padding
positions) and its behaviour log-probability / split advantage refer to token i, predicted from
position i − 1.

**Micro-batches.** A micro-batch costs ``rows × longest row`` token slots (right padding).
:func:`pack_microbatches` sorts rows longest first and fills each micro-batch while that cost
stays within ``max_tokens`` (first fit decreasing); a row longer than the budget goes alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from agentrl.rollout.batch import TokenRow

__all__ = ["Collated", "TokenRow", "collate", "pack_microbatches"]


def pack_microbatches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices of rows per micro-batch with ``len(mb) × max length ≤ max_tokens`` (first fit decreasing)."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        # Rows arrive longest first, so a batch's first row is its longest.
        for mb in batches:
            if (len(mb) + 1) * lengths[mb[0]] <= max_tokens:
                mb.append(i)
                break
        else:
            batches.append([i])
    return batches


@dataclasses.dataclass
class Collated:
    """Right-padded tensors of a micro-batch (``weight`` from :func:`agentrl.train.loss.loss_weights`)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor
    old_logp: torch.Tensor
    advantage: torch.Tensor
    advantage_neg: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(rows: Sequence[TokenRow], pad_id: int) -> Collated:
    width = max(len(r) for r in rows)

    def pad(values, fill, dtype):
        return torch.tensor([list(v) + [fill] * (width - len(v)) for v in values], dtype=dtype)

    return Collated(
        input_ids=pad([r.input_ids for r in rows], pad_id, torch.long),
        attention_mask=pad([[1] * len(r) for r in rows], 0, torch.long),
        mask=pad([r.mask for r in rows], 0, torch.long),
        old_logp=pad([r.old_logp for r in rows], 0.0, torch.float32),
        advantage=pad([r.advantage for r in rows], 0.0, torch.float32),
        advantage_neg=pad([r.advantage_neg for r in rows], 0.0, torch.float32),
    )
