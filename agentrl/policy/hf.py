"""`HFPolicy`: a transformers causal LM sampled in-process, with dynamic batching.

Concurrent ``generate`` calls (one per episode in flight) are grouped by a
:class:`~agentrl.policy.batching.DynamicBatcher` (at most ``max_batch_size``, waiting at most
``max_wait_s`` for more); a batch is left-padded and decoded together with a KV cache in a
worker thread, so the event loop keeps stepping environments while the model runs. Each row keeps its own sampling parameters (temperature,
top-k/top-p, stop ids, stop strings, token budget, seed).

Logprobs are those of the sampled tokens under ``log_softmax(logits / T)`` (see
:mod:`agentrl.policy.base`), computed in float32 from the same forward pass that sampled them.

Weights are shared with an in-process trainer: ``policy.model`` *is* the trained module. The
trainer mutates weights (or switches train/eval mode) only while holding
``policy.weights_lock`` — the batcher holds it for each batch, so a batch never mixes two
weight versions — and then calls :meth:`HFPolicy.bump_version`::

    with policy.weights_lock:
        optimizer.step()
        policy.bump_version()
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from agentrl.policy.base import Completion, SamplingParams, VersionedPolicy, generation_budget
from agentrl.policy.batching import DynamicBatcher


@dataclasses.dataclass
class _Request:
    prompt: list[int]
    sampling: SamplingParams
    budget: int


class HFPolicy(VersionedPolicy):
    """In-process transformers policy (see the module docstring).

    ``max_context_tokens`` defaults to the model's ``max_position_embeddings``. ``seed`` seeds
    the sampler for requests that carry no seed of their own.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_batch_size: int = 8,
        max_wait_s: float = 0.005,
        max_context_tokens: int | None = None,
        seed: int = 0,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self._max_context = max_context_tokens or getattr(model.config, "max_position_embeddings", None)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token")
        self.pad_token_id = int(pad)
        self.eos_token_ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
        self.weights_lock = threading.RLock()
        self._version = 0
        self._generator = torch.Generator().manual_seed(seed)
        self._batcher = DynamicBatcher(self._generate_batch, max_batch_size, max_wait_s)

    # ------------------------------------------------------------------ Policy protocol
    def reseed(self, seed: int) -> None:
        """Reseed the sampler used by requests without a seed of their own (reproducible steps)."""
        self._generator.manual_seed(seed)

    def bump_version(self) -> int:
        """Call after each weight update (while holding ``weights_lock``); returns the new version."""
        self._version += 1
        return self._version

    async def sync_weights(self, model: Any, version: int | None = None) -> int:
        """The sampler shares the trained module: the new weights are live, mark their version."""
        with self.weights_lock:
            self._version = self._version + 1 if version is None else version
        return self._version

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        if not prompt_token_ids:
            raise ValueError("prompt_token_ids is empty")
        budget = generation_budget(len(prompt_token_ids), sampling, self._max_context)
        return await self._batcher.submit(_Request(list(prompt_token_ids), sampling, budget))

    @property
    def stats(self) -> dict[str, float]:
        """Batches, requests and seconds of model time so far (see :class:`DynamicBatcher`)."""
        return self._batcher.stats

    async def aclose(self) -> None:
        await self._batcher.aclose()

    # ------------------------------------------------------------------ decoding (worker thread)
    def _generate_batch(self, batch: list[_Request]) -> list[Completion]:
        with self.weights_lock, torch.no_grad():
            return self._decode(batch, self._version)

    def _decode(self, batch: list[_Request], version: int) -> list[Completion]:
        device = next(self.model.parameters()).device
        rows = len(batch)
        width = max(len(r.prompt) for r in batch)
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((rows, width), dtype=torch.long)
        for i, request in enumerate(batch):  # left padding: every row's last column is real
            input_ids[i, width - len(request.prompt):] = torch.tensor(request.prompt)
            attention[i, width - len(request.prompt):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        temperatures = torch.tensor([r.sampling.temperature or 1.0 for r in batch], device=device)
        generators = [
            torch.Generator().manual_seed(r.sampling.seed) if r.sampling.seed is not None else self._generator
            for r in batch
        ]
        stop_ids = [self.eos_token_ids | set(r.sampling.stop_token_ids) for r in batch]
        tokens: list[list[int]] = [[] for _ in batch]
        logprobs: list[list[float]] = [[] for _ in batch]
        finish: list[str | None] = [None] * rows

        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        next_position = positions[:, -1] + 1
        for _ in range(max(r.budget for r in batch)):
            logp = torch.log_softmax(out.logits[:, -1, :].float() / temperatures[:, None], dim=-1)
            chosen = torch.empty(rows, dtype=torch.long)
            for i, request in enumerate(batch):
                if finish[i] is None:
                    chosen[i] = self._sample(logp[i], request.sampling, generators[i])
                else:
                    chosen[i] = self.pad_token_id
            picked = logp.gather(1, chosen.to(device)[:, None])[:, 0].tolist()
            for i, request in enumerate(batch):
                if finish[i] is not None:
                    continue
                token = int(chosen[i])
                tokens[i].append(token)
                logprobs[i].append(picked[i])
                if token in stop_ids[i] or self._hit_stop_string(tokens[i], request.sampling):
                    finish[i] = "stop"
                elif len(tokens[i]) >= request.budget:
                    finish[i] = "length"
            if all(f is not None for f in finish):
                break
            attention = torch.cat([attention, attention.new_ones((rows, 1))], dim=1)
            out = self.model(
                input_ids=chosen.to(device)[:, None],
                attention_mask=attention,
                position_ids=next_position[:, None],
                use_cache=True,
                **_cache_kwargs(out),
            )
            next_position = next_position + 1
        return [
            Completion(token_ids=t, logprobs=lp, finish_reason=f, policy_version=version)
            for t, lp, f in zip(tokens, logprobs, finish)
        ]

    @staticmethod
    def _sample(logp: torch.Tensor, sampling: SamplingParams, generator: torch.Generator) -> int:
        """Draw one token from ``logp`` (already temperature-scaled) with top-k / top-p filters."""
        if sampling.temperature == 0:
            return int(logp.argmax())
        filtered = logp.cpu()
        if sampling.top_k and sampling.top_k < filtered.numel():
            kth = torch.topk(filtered, sampling.top_k).values[-1]
            filtered = filtered.masked_fill(filtered < kth, float("-inf"))
        if sampling.top_p < 1.0:
            sorted_logp, order = torch.sort(filtered, descending=True)
            cumulative = sorted_logp.exp().cumsum(0)
            drop = cumulative - sorted_logp.exp() >= sampling.top_p  # keep the smallest set reaching top_p
            filtered = filtered.scatter(0, order[drop], float("-inf"))
        return int(torch.multinomial(filtered.exp(), 1, generator=generator))

    def _hit_stop_string(self, tokens: list[int], sampling: SamplingParams) -> bool:
        if not sampling.stop:
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return any(s in text for s in sampling.stop)


def _cache_kwargs(out: Any) -> dict[str, Any]:
    """The KV cache of ``out`` as the next forward's keyword: ``cache`` in transformers 5.x
    (``past_key_values`` is deprecated there), ``past_key_values`` before."""
    if "cache" in out:
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}
