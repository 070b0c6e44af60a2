"""`VLLMPolicy`: vLLM's async engine in-process (optional extra: ``pip install 'agentrl[vllm]'``).

vLLM is imported only when a :class:`VLLMPolicy` is built, so everything else in agentrl works
without it (and without a GPU). Requests go to ``AsyncLLMEngine.generate`` with the prompt as
token ids; vLLM's continuous batching does the batching. The completion's ids, the sampled
tokens' logprobs (``logprobs=0``: only the sampled token's) and the finish reason are read from
the final ``RequestOutput``.

Logprob convention: vLLM returns *raw* logprobs (before temperature) by default. To get the
temperature-scaled logprobs of :mod:`agentrl.policy.base`, pass
``engine_kwargs={"logprobs_mode": "processed_logprobs"}`` (vLLM ≥ 0.10.2).

Weight updates (:meth:`VLLMPolicy.sync_weights`, a module or a state dict): new requests wait,
requests in flight finish, the named tensors are loaded into every worker's model
(``collective_rpc`` → the model's ``load_weights``), the prefix cache is reset (cached KV was
computed by the old weights), the version is set and requests resume. The requests in flight are
not cut: vLLM's engine decodes them on its own, so an update waits for the turns in flight (a
*turn* boundary), and every completion is one version (``token_versions`` is None). The in-process
HF sampler is the one that cuts a turn mid-decode (:mod:`agentrl.policy.hf`).

Status: untested on a GPU in this repository's CI (no GPU machine); the argument mapping, output
parsing, lazy import and weight-update sequencing are covered by CPU tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from agentrl.policy.base import (
    Completion,
    PolicyBackendError,
    SamplingParams,
    VersionedPolicy,
    generation_budget,
    state_dict_of,
)

INSTALL_HINT = "VLLMPolicy needs vLLM and a GPU: pip install 'agentrl[vllm]' (or use HFPolicy / OpenAIPolicy)"


def vllm_sampling_kwargs(sampling: SamplingParams, max_tokens: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (ids and logprobs always returned)."""
    return {
        "n": 1,
        "max_tokens": max_tokens or sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
        "stop": list(sampling.stop) or None,
        "stop_token_ids": list(sampling.stop_token_ids) or None,
        "seed": sampling.seed,
        "logprobs": 0,
        "skip_special_tokens": False,
    }


def completion_from_output(output: Any, policy_version: int) -> Completion:
    """A :class:`Completion` from vLLM's final ``RequestOutput``."""
    sample = output.outputs[0]
    if sample.finish_reason not in ("stop", "length"):
        raise PolicyBackendError(f"vLLM ended the request with finish_reason={sample.finish_reason!r}")
    token_ids = list(sample.token_ids)
    if sample.logprobs is None or len(sample.logprobs) != len(token_ids):
        raise PolicyBackendError("vLLM returned no logprobs for the sampled tokens")
    logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs, token_ids)]
    return Completion(token_ids=token_ids, logprobs=logprobs, finish_reason=sample.finish_reason,
                      policy_version=policy_version, text=sample.text)


def _load_weights_on_worker(worker: Any, named_tensors: list[tuple[str, Any]]) -> None:
    """Runs inside each vLLM worker (through ``collective_rpc``)."""
    worker.model_runner.model.load_weights(weights=named_tensors)


class VLLMPolicy(VersionedPolicy):
    """An in-process vLLM async engine. ``engine`` may be passed pre-built (tests, custom setups);
    otherwise it is created from ``model`` and ``engine_kwargs`` (``AsyncEngineArgs`` fields)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        engine: Any | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        max_context_tokens: int | None = None,
    ):
        if engine is None:
            if model is None:
                raise ValueError("give a model name/path or a pre-built engine")
            try:
                from vllm import AsyncEngineArgs, AsyncLLMEngine
            except ImportError as exc:
                raise ImportError(INSTALL_HINT) from exc
            engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model=model, **(engine_kwargs or {})))
        self.engine = engine
        self._max_context = max_context_tokens
        self._version = 0
        self._ids = itertools.count()
        self._in_flight = 0
        self._pauses = 0
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Condition()

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        budget = generation_budget(len(prompt_token_ids), sampling, self._max_context)
        await self._open.wait()  # paused while weights are being replaced
        self._in_flight += 1
        try:
            params = self._sampling_params(vllm_sampling_kwargs(sampling, budget))
            final = None
            async for output in self.engine.generate(
                {"prompt_token_ids": list(prompt_token_ids)}, params, f"agentrl-{next(self._ids)}"
            ):
                final = output
            if final is None:
                raise PolicyBackendError("vLLM produced no output")
            return completion_from_output(final, self._version)
        except PolicyBackendError:
            raise
        except (RuntimeError, ValueError, OSError) as exc:  # engine dead, request rejected, ...
            raise PolicyBackendError(f"vLLM generate failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._in_flight -= 1
            async with self._idle:
                self._idle.notify_all()

    #: Weights change only through :meth:`sync_weights` (the engine holds its own copy).
    weights_lock = contextlib.nullcontext()

    def reseed(self, seed: int) -> None:
        """No-op: the rollout engine gives every request its own seed (vLLM seeds per request)."""

    async def sync_weights(self, weights: Any, version: int | None = None) -> int:
        """Load ``weights`` (a module or a state dict) into the engine as ``version`` (default:
        the next one): requests paused meanwhile, the turns in flight finish first."""
        await self.pause()
        try:
            named = [(n, t.detach()) for n, t in state_dict_of(weights).items()]
            await self.engine.collective_rpc(_load_weights_on_worker, args=(named,))
            await self.engine.reset_prefix_cache()
            self._version = self._version + 1 if version is None else version
        finally:
            self.resume()
        return self._version

    async def aclose(self) -> None:
        """Nothing to release beyond the engine, which lives as long as the process."""

    async def pause(self) -> None:
        """New requests wait; returns once the requests in flight are done (nested pauses count)."""
        self._pauses += 1
        self._open.clear()
        async with self._idle:
            await self._idle.wait_for(lambda: self._in_flight == 0)

    def resume(self) -> None:
        """Undo one :meth:`pause`."""
        if not self._pauses:
            raise RuntimeError("resume() without pause()")
        self._pauses -= 1
        if not self._pauses:
            self._open.set()

    @staticmethod
    def _sampling_params(kwargs: dict[str, Any]) -> Any:
        try:
            from vllm import SamplingParams as VSamplingParams
        except ImportError:  # a pre-built stand-in engine takes the plain dict
            return kwargs
        return VSamplingParams(**kwargs)
