"""`HFPolicy`: a transformers causal LM sampled in-process, with dynamic batching.

Concurrent ``generate`` calls (one per episode in flight) are grouped by a
:class:`~agentrl.policy.batching.DynamicBatcher` (at most ``max_batch_size``, waiting at most
``max_wait_s`` for more); a batch is left-padded and decoded together with a KV cache in a
worker thread, so the event loop keeps stepping environments while the model runs. Each row keeps its own sampling parameters (temperature,
top-k/top-p, stop ids, stop strings, token budget, seed).

Logprobs are those of the sampled tokens under ``log_softmax(logits / T)`` (see
:mod:`agentrl.policy.base`), computed in float32 from the same forward pass that sampled them.

**Weight updates cut a turn mid-decode.** Whoever changes the weights holds
``policy.weights_lock`` (a :class:`WeightsLock`); the decode steps run under it too. The batch
being decoded checks between tokens whether an update waits, and if so stops at once: the rows
that are done are done, the others keep their tokens and logprobs so far, the lock is released
and the update runs. Then the unfinished rows go on under the new weights — as one batch whose
prompts are each row's prompt plus its tokens so far, with the rest of its token budget, the same
per-row random generator (its stream continues) and the stop strings checked over the whole turn.
An update therefore waits for one decode step, not for the longest turn in flight. Each token
records the version that sampled it (``Completion.token_versions``; ``policy_version`` is the
oldest), and its logprob is that version's. A turn no update cuts is decoded exactly as without
one (the same tokens and logprobs, bit for bit). :meth:`HFPolicy.sync_weights` is the one way
to change weights from outside (it holds the lock, loads, and sets the version);
:meth:`HFPolicy.pause` holds the decoder across calls (the Ray sampler server's pause / load /
resume). An in-process trainer that shares ``policy.model`` (sync mode) holds the lock around its
own in-place updates::

    with policy.weights_lock:
        optimizer.step()
        policy.bump_version()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any, Self

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from agentrl.policy.base import Completion, SamplingParams, VersionedPolicy, generation_budget, state_dict_of
from agentrl.policy.batching import DynamicBatcher


@dataclasses.dataclass
class _Request:
    prompt: list[int]
    sampling: SamplingParams
    budget: int


@dataclasses.dataclass
class _Row:
    """One request's turn while it is decoded, kept across the weight updates that cut it."""

    request: _Request
    generator: torch.Generator
    stop_ids: set[int]
    tokens: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    versions: list[int] = dataclasses.field(default_factory=list)
    finish: str | None = None

    def completion(self) -> Completion:
        one = len(set(self.versions)) == 1
        return Completion(
            token_ids=self.tokens, logprobs=self.logprobs, finish_reason=self.finish,
            policy_version=min(self.versions), token_versions=None if one else self.versions,
        )


class WeightsLock:
    """``with lock:`` — a change of the weights; the decoder's steps run under :meth:`decoding`.

    A holder (or a :meth:`hold`) makes the decode batch stop at its next token (it polls
    :attr:`wanted` between tokens) and keeps the decoder out until the last hold is released.
    ``with lock:`` is re-entrant in one thread; :meth:`hold` / :meth:`release` are not tied to
    a thread (an actor's pause and resume calls).
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._changed = threading.Condition()
        self._holds = 0

    @property
    def wanted(self) -> bool:
        """An update waits or runs: the decoder stops at its next token."""
        return self._holds > 0

    def hold(self) -> None:
        with self._changed:
            self._holds += 1

    def release(self) -> None:
        with self._changed:
            if not self._holds:
                raise RuntimeError("release() without hold(): resume() without pause()?")
            self._holds -= 1
            self._changed.notify_all()

    def wait_idle(self) -> None:
        """Return once no decode step runs (call while holding: none starts after it)."""
        with self._mutex:
            pass

    def __enter__(self) -> Self:
        self.hold()
        self._mutex.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()
        self.release()

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """Held by the decoder for one run of decode steps: waits while an update is wanted."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: not self._holds)
            self._mutex.acquire()
            if not self._holds:  # no update came in between: decode
                break
            self._mutex.release()
        try:
            yield
        finally:
            self._mutex.release()


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
        self.weights_lock = WeightsLock()
        self._version = 0
        self._generator = torch.Generator().manual_seed(seed)
        self._batcher = DynamicBatcher(self._generate_batch, max_batch_size, max_wait_s)

    # ------------------------------------------------------------------ Policy protocol
    def reseed(self, seed: int) -> None:
        """Reseed the sampler used by requests without a seed of their own (reproducible steps)."""
        self._generator.manual_seed(seed)

    def bump_version(self) -> int:
        """Call after each in-place weight update (while holding ``weights_lock``); returns the new version."""
        self._version += 1
        return self._version

    async def sync_weights(self, weights: Any, version: int | None = None) -> int:
        """Serve ``weights`` (a module or a state dict) as ``version`` (default: the next one).
        ``policy.model`` itself is only marked with the version (the trained module is shared);
        anything else is loaded into ``policy.model``. The decode batch running stops at its next
        token and goes on with the new weights (module docstring)."""
        return await asyncio.to_thread(self._swap, weights, version)

    def _swap(self, weights: Any, version: int | None) -> int:
        with self.weights_lock:
            if weights is not self.model:
                self.model.load_state_dict(state_dict_of(weights))
            self._version = self._version + 1 if version is None else version
            return self._version

    async def pause(self) -> None:
        """Stop decoding (nested pauses count): returns once no decode step runs; the turns in
        flight stop at their next token and go on after :meth:`resume`."""
        self.weights_lock.hold()
        await asyncio.to_thread(self.weights_lock.wait_idle)

    def resume(self) -> None:
        """Undo one :meth:`pause`."""
        self.weights_lock.release()

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
        rows = [
            _Row(
                request,
                torch.Generator().manual_seed(request.sampling.seed) if request.sampling.seed is not None
                else self._generator,
                self.eos_token_ids | set(request.sampling.stop_token_ids),
            )
            for request in batch
        ]
        while unfinished := [row for row in rows if row.finish is None]:  # more than once: cut by updates
            with self.weights_lock.decoding(), torch.no_grad():
                self._decode(unfinished, self._version)
        return [row.completion() for row in rows]

    def _decode(self, rows: list[_Row], version: int) -> None:
        """Decode ``rows`` (each from its prompt and tokens so far) until every row is finished
        or an update is wanted; at least one token per row."""
        device = next(self.model.parameters()).device
        prefixes = [row.request.prompt + row.tokens for row in rows]
        width = max(map(len, prefixes))
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, prefix in enumerate(prefixes):  # left padding: every row's last column is real
            input_ids[i, width - len(prefix):] = torch.tensor(prefix)
            attention[i, width - len(prefix):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        temperatures = torch.tensor([row.request.sampling.temperature or 1.0 for row in rows], device=device)

        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        next_position = positions[:, -1] + 1
        while True:
            logp = torch.log_softmax(out.logits[:, -1, :].float() / temperatures[:, None], dim=-1)
            chosen = torch.empty(len(rows), dtype=torch.long)
            for i, row in enumerate(rows):
                if row.finish is None:
                    chosen[i] = self._sample(logp[i], row.request.sampling, row.generator)
                else:
                    chosen[i] = self.pad_token_id
            picked = logp.gather(1, chosen.to(device)[:, None])[:, 0].tolist()
            for i, row in enumerate(rows):
                if row.finish is not None:
                    continue
                token = int(chosen[i])
                row.tokens.append(token)
                row.logprobs.append(picked[i])
                row.versions.append(version)
                if token in row.stop_ids or self._hit_stop_string(row.tokens, row.request.sampling):
                    row.finish = "stop"
                elif len(row.tokens) >= row.request.budget:
                    row.finish = "length"
            if all(row.finish is not None for row in rows) or self.weights_lock.wanted:
                return
            attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
            out = self.model(
                input_ids=chosen.to(device)[:, None],
                attention_mask=attention,
                position_ids=next_position[:, None],
                use_cache=True,
                **_cache_kwargs(out),
            )
            next_position = next_position + 1

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
