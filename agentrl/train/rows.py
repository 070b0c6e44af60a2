"""From recorded steps to training rows, and rows to micro-batches packed by token count.

**Rows.** The rollout engine records, for every step, the exact context the policy saw
(``prompt_token_ids``) and what it sampled (``completion_token_ids`` + behaviour ``logprobs``).
While each step's context extends the previous one (``prompt_{t+1}`` starts with
``prompt_t ‖ C_t``: the renderer only ever appends), a whole trajectory is **one** row — the last
context plus the last completion — whose loss positions are the completion spans. Where the
context does not extend (a new segment after a template rewrote history, or step-wise prompts),
a new row starts. No token is ever re-tokenized: the ids trained on are the ids sampled.

Positions are aligned with ``input_ids``: ``mask[i] = 1`` when token i was sampled by the policy
(it is predicted from position i − 1), ``old_logp[i]`` its behaviour log-probability and
``advantage[i]`` its advantage. Observation, prompt and padding positions have mask 0.

**Micro-batches.** A micro-batch costs ``rows × longest row`` token slots (right padding).
:func:`pack_microbatches` sorts rows longest first and fills each micro-batch while that cost
stays within ``max_tokens`` (first fit decreasing); a row longer than the budget goes alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from agentrl.types import Trajectory


@dataclasses.dataclass
class TokenRow:
    """One training sequence: ids and per-position mask, behaviour logprob, advantage."""

    input_ids: list[int]
    mask: list[int]
    old_logp: list[float]
    advantage: list[float]
    traj_index: int
    policy_version: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def build_rows(
    trajectories: Sequence[Trajectory], token_advantages: np.ndarray, token_mask: np.ndarray | None = None
) -> list[TokenRow]:
    """Training rows for ``trajectories`` (in order, steps without tokens skipped).

    ``token_advantages`` is the flat per-token axis: the advantages of every completion token of
    every step, trajectory after trajectory, step after step (``Advantages.token`` of
    :class:`agentrl.algos.Pipeline`). ``token_mask`` (same axis, optional) is False for tokens
    that must not be trained on (infra-failed rollouts): they get loss mask 0.
    """
    total = sum(len(s.completion_token_ids) for t in trajectories for s in t.steps)
    token_advantages = np.asarray(token_advantages, dtype=np.float64)
    if token_advantages.shape != (total,):
        raise ValueError(f"expected {total} token advantages (one per completion token), got {token_advantages.shape}")
    keep = np.ones(total, dtype=bool) if token_mask is None else np.asarray(token_mask, dtype=bool)
    if keep.shape != (total,):
        raise ValueError(f"expected {total} token mask entries, got {keep.shape}")
    rows: list[TokenRow] = []
    cursor = 0
    for ti, traj in enumerate(trajectories):
        current: TokenRow | None = None
        for step in traj.steps:
            n = len(step.completion_token_ids)
            adv = token_advantages[cursor : cursor + n]
            trainable = keep[cursor : cursor + n].astype(int).tolist()
            cursor += n
            if n == 0:
                continue
            if len(step.logprobs) != n:
                raise ValueError(f"trajectory {traj.id!r} step {step.index}: completion has no behaviour logprobs")
            prompt = step.prompt_token_ids
            if not prompt:
                raise ValueError(f"trajectory {traj.id!r} step {step.index}: empty prompt_token_ids")
            if current is None or prompt[: len(current.input_ids)] != current.input_ids:
                current = TokenRow([], [], [], [], ti, step.policy_version)
                rows.append(current)
            extra = prompt[len(current.input_ids) :]
            current.input_ids += list(extra) + list(step.completion_token_ids)
            current.mask += [0] * len(extra) + trainable
            current.old_logp += [0.0] * len(extra) + list(step.logprobs)
            current.advantage += [0.0] * len(extra) + adv.tolist()
            if step.policy_version is not None:
                older = current.policy_version
                current.policy_version = step.policy_version if older is None else min(older, step.policy_version)
    return rows


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
    )
