"""The learner: one policy update from training rows (PPO epochs → mini-batches → micro-batches).

For each PPO epoch the rows are shuffled and split into ``minibatches`` mini-batches; each
mini-batch is one optimizer step. Its loss weights (token-mean / seq-mean) are computed over the
whole mini-batch (:func:`agentrl.train.loss.loss_weights`), then it is cut into micro-batches of
at most ``micro_batch_tokens`` padded token slots (:func:`agentrl.train.rows.pack_microbatches`)
whose gradients accumulate — the sum over micro-batches *is* the mini-batch loss, so the
micro-batch size changes memory, never the result. The gradient norm is clipped to
``max_grad_norm`` before the step.

Data parallel: a learner trains in a group of ranks (:class:`Ranks`; one process by default).
Every rank sees the same rows and draws the same shuffles; in each mini-batch rank r trains its
slice (:func:`split_rows`, balanced by tokens), weighed with the whole mini-batch's normalizers
(all-reduced sums, :func:`agentrl.train.loss.loss_normalizer`), so the ranks' gradients *sum* to
the single-process gradient and their statistics sum to its statistics. The group on Ray actors
is :mod:`agentrl.cluster.learner`.

Dropout stays off (the model is never put in train mode): the recomputed log-probabilities must
match the sampler's, and in-process sampling may run while the learner computes gradients.

Mixed precision: ``precision="auto"`` runs the forward under bfloat16 autocast on a CUDA device
that supports it and in float32 elsewhere (CPUs gain nothing from bf16 autocast for tiny models,
and the sampler's logprobs are float32 there, so ratios start at exactly 1). Log-probabilities,
entropies and the loss are always computed in float32.

LoRA (``peft``): :func:`apply_lora` wraps the model; only adapter weights train and the
reference policy for the KL term is the same model with its adapters disabled (no second copy).
Without LoRA the reference is a frozen copy of the weights RL started from.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from agentrl.train.config import Aggregation, LoraSettings, OptimConfig, PolicyLossConfig, Precision
from agentrl.train.loss import (
    loss_normalizer,
    loss_weights,
    policy_loss,
    token_logprobs_and_entropy,
)
from agentrl.train.rows import TokenRow, collate, pack_microbatches

Objective = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (needs the ``peft`` package: ``pip install agentrl[lora]``)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("LoRA needs peft: pip install 'agentrl[lora]'") from exc
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=settings.target_modules
    )
    return get_peft_model(model, config)


def cpu_threads(requested: int) -> int:
    """torch's intra-op thread count on CPU: ``requested``, or for 0 half the usable cores (≥ 1, ≤ 8).

    torch's own default is every core; measured on a loaded 2-core machine an SFT step of the tiny
    model took 4.9–7.2 s with 2 threads and 0.43–1.0 s with 1 (threads spin while waiting for a
    core the other processes hold, and a tiny model has little to split).
    """
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // 2))


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain float32)."""
    if precision == "fp32":
        return None
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16":
        if device.type == "cuda" and not supported:
            raise ValueError("precision bf16: this GPU does not support bfloat16")
        return torch.bfloat16
    return torch.bfloat16 if supported else None


class Ranks:
    """The data-parallel group a :class:`Learner` trains in; this one is a single process (it
    trains every row and has nothing to reduce). :class:`agentrl.cluster.learner.DistributedRanks`
    is a torch.distributed group with its model sharded."""

    rank = 0
    world = 1

    def shard(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` as this rank holds it (before its optimizer is built)."""
        return module

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (an all-reduce)."""
        return values

    def max(self, value: int) -> int:
        """The largest ``value`` of any rank."""
        return value


def policy_positions(mask: Sequence[int]) -> np.ndarray:
    """The positions of a row's policy tokens (mask > 0; position 0 has no prediction)."""
    return np.flatnonzero(np.asarray(mask[1:]) > 0) + 1


def split_rows(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Row indices for each of ``parts`` ranks, balanced by tokens and deterministic: the longest
    row first, each to the rank with the fewest tokens so far (ties: the lower rank); each part in
    row order. One part is every row, in order."""
    loads = [0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = min(range(parts), key=lambda r: loads[r])
        out[r].append(i)
        loads[r] += lengths[i]
    return [sorted(part) for part in out]


class Learner:
    """Owns the trainable model and its optimizer; :meth:`update` runs one policy update.

    ``ranks``: the data-parallel group this learner is one member of (default: one process).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optim: OptimConfig,
        loss: PolicyLossConfig,
        pad_id: int,
        seed: int = 0,
        weights_lock: Any = None,
        ranks: Ranks | None = None,
    ):
        self.ranks = ranks or Ranks()
        self._is_peft = hasattr(model, "disable_adapter")
        self.reference: torch.nn.Module | None = None
        if loss.kl_coef > 0 and not self._is_peft:
            self.reference = self.ranks.shard(copy.deepcopy(model).eval().requires_grad_(False))
        self.model = model = self.ranks.shard(model)
        self.optim = optim
        self.loss = loss
        self.pad_id = pad_id
        self.device = next(model.parameters()).device
        self.amp_dtype = autocast_dtype(optim.precision, self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
        warmup = optim.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.rng = np.random.default_rng(seed)
        # Held around every in-place weight change: an in-process sampler holds it per batch.
        self.weights_lock = weights_lock if weights_lock is not None else contextlib.nullcontext()

    # ------------------------------------------------------------------ forward passes
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _forward(self, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_entropy: bool):
        with self._autocast():
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        return token_logprobs_and_entropy(logits[:, :-1], input_ids[:, 1:], with_entropy)

    @torch.no_grad()
    def _reference_logp(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self._is_peft:
            with self.model.disable_adapter():
                return self._forward(self.model, input_ids, attention_mask, False)[0]
        assert self.reference is not None
        return self._forward(self.reference, input_ids, attention_mask, False)[0]

    def token_entropies(self, rows: Sequence[TokenRow]) -> np.ndarray:
        """Entropy of the current policy at every policy token, rows in order (flat)."""
        return self._per_token(rows, entropy=True)[1]

    def token_logprobs(self, rows: Sequence[TokenRow]) -> tuple[list[np.ndarray], np.ndarray]:
        """Each row's policy-token positions (:func:`policy_positions`) and log π_θ at them under
        the current weights, rows in order (flat)."""
        return self._per_token(rows, entropy=False)

    @torch.no_grad()
    def _per_token(self, rows: Sequence[TokenRow], entropy: bool) -> tuple[list[np.ndarray], np.ndarray]:
        positions = [policy_positions(r.mask) for r in rows]
        values: list[np.ndarray] = [np.zeros(0)] * len(rows)
        for mb in pack_microbatches([len(r) for r in rows], self.optim.micro_batch_tokens):
            batch = collate([rows[i] for i in mb], self.pad_id)
            logp, ent = self._forward(
                self.model, batch.input_ids.to(self.device), batch.attention_mask.to(self.device), entropy
            )
            per_position = (ent if entropy else logp).float().cpu().numpy()  # column i - 1: position i
            for j, i in enumerate(mb):
                values[i] = per_position[j, positions[i] - 1]
        return positions, np.concatenate(values) if rows else np.zeros(0)

    # ------------------------------------------------------------------ the update
    def update(self, rows: Sequence[TokenRow]) -> dict[str, float]:
        """PPO epochs over ``rows``; returns the mean diagnostics of the last epoch's steps."""
        rows = [r for r in rows if any(r.mask)]
        if not rows:
            return {"trained_tokens": 0.0}
        history: list[dict[str, float]] = []
        for _ in range(self.optim.ppo_epochs):
            order = self.rng.permutation(len(rows))
            history = [self._optimizer_step([rows[i] for i in part]) for part in np.array_split(order, self.optim.minibatches)
                       if len(part)]
        keys = history[0].keys()
        out = {k: float(np.mean([h[k] for h in history])) for k in keys}
        out["trained_tokens"] = float(sum(sum(r.mask) for r in rows))
        return out

    def _optimizer_step(self, rows: list[TokenRow]) -> dict[str, float]:
        def ppo(logp, entropy, batch, weights, ref):
            return policy_loss(
                logp, batch.old_logp[:, 1:].to(self.device), batch.advantage[:, 1:].to(self.device), weights,
                self.loss, ref_logp=ref, entropy=entropy, advantages_neg=batch.advantage_neg[:, 1:].to(self.device),
            )

        return self.optimizer_step(rows, ppo, self.loss.aggregation, with_reference=self.loss.kl_coef > 0)

    def optimizer_step(
        self,
        rows: list[TokenRow],
        objective: Objective,
        aggregation: Aggregation = "token-mean",
        *,
        with_entropy: bool = True,
        with_reference: bool = False,
        scheduler: bool = True,
    ) -> dict[str, float]:
        """One optimizer step on ``rows``: weights over all rows, gradients accumulated per micro-batch.

        ``objective(logp, entropy, batch, weights, ref_logp) -> (loss, stats)`` gets tensors for
        positions 1… of a micro-batch (position i predicts token i); stats are summed over
        micro-batches (and over the ranks).
        """
        mine = [rows[i] for i in split_rows([len(r) for r in rows], self.ranks.world)[self.ranks.rank]]
        width = max((len(r) for r in mine), default=1)
        mask = torch.tensor([r.mask + [0] * (width - len(r)) for r in mine]).reshape(len(mine), width)
        # The whole mini-batch's normalizers (summed over the ranks), not this rank's slice's own.
        weights = loss_weights(mask, aggregation, self.ranks.sum(loss_normalizer(mask, aggregation)))
        micro = [
            ([mine[i] for i in mb], weights[mb])
            for mb in pack_microbatches([len(r) for r in mine], self.optim.micro_batch_tokens)
        ]
        # Every rank runs as many forward/backward passes (a sharded model gathers its weights in
        # each one); a rank with fewer micro-batches adds zero-weight passes over one row.
        spare = (mine or rows)[:1]
        micro += [(spare, torch.zeros(1, len(spare[0])))] * (self.ranks.max(len(micro)) - len(micro))
        sums: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for mb_rows, mb_weights in micro:
            batch = collate(mb_rows, self.pad_id)
            n = batch.input_ids.shape[1]
            w = mb_weights[:, :n][:, 1:].to(self.device)
            ids = batch.input_ids.to(self.device)
            attn = batch.attention_mask.to(self.device)
            ref = self._reference_logp(ids, attn) if with_reference else None
            logp, entropy = self._forward(self.model, ids, attn, with_entropy=with_entropy)
            loss, stats = objective(logp, entropy, batch, w, ref)
            loss.backward()
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        keys = sorted(sums)
        sums = dict(zip(keys, self.ranks.sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64)).tolist()))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.optim.max_grad_norm if self.optim.max_grad_norm is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor
        if not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)  # skip a step that would poison the weights
            sums["skipped_steps"] = 1.0
        else:
            with self.weights_lock:
                self.optimizer.step()
            sums["skipped_steps"] = 0.0
        if scheduler:
            self.scheduler.step()
            sums["lr"] = self.scheduler.get_last_lr()[0]
        sums["grad_norm"] = grad_norm
        return sums

    def state_dict(self) -> dict[str, Any]:
        """Loop state the learner adds to a checkpoint (its shuffling generator)."""
        return {"learner_rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["learner_rng"]
