"""Policies backed by an OpenAI-compatible HTTP server (vLLM, SGLang, ``agentrl serve``, …).

:class:`OpenAIPolicy` — token-level, for training and evaluation. It calls ``/v1/completions``
with the prompt *as token ids* and asks for the sampled ids and their logprobs::

    {"model": ..., "prompt": [ids], "max_tokens": ..., "logprobs": 1, "return_token_ids": true,
     "skip_special_tokens": false, ...}

The ids come from ``choices[0].token_ids`` (vLLM ≥ 0.10.2 with ``return_token_ids``, and
``agentrl serve``) or, failing that, from ``logprobs.tokens`` written as ``token_id:N`` (vLLM's
``--return-tokens-as-token-ids``). A server that returns neither raises
:class:`TokenIdsUnavailableError`: decoding text and re-encoding it would drift from what was
sampled, so training refuses it.

:class:`OpenAIChatPolicy` — chat-only (``/v1/chat/completions``), for evaluating API models that
take messages and return text. It has no token ids; its ``generate`` raises with a message that
says so. Use it with :func:`agentrl.rollout.run_actor` and a :class:`~agentrl.rollout.ChatActor`.

Failures are typed: connection errors, timeouts, 429 and 5xx → :class:`PolicyBackendError`
(retryable infrastructure); a 400 about the context length → :class:`ContextOverflowError`;
other 4xx → :class:`PolicyError` (a bad request: fix the configuration).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from agentrl.policy.base import (
    Completion,
    ContextOverflowError,
    PolicyBackendError,
    PolicyError,
    SamplingParams,
    TokenIdsUnavailableError,
)

_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too long", "exceeds the max")


def sampling_body(sampling: SamplingParams) -> dict[str, Any]:
    """OpenAI request fields for ``sampling`` (``top_k``/``stop_token_ids`` are vLLM/SGLang extensions,
    sent only when set)."""
    body: dict[str, Any] = {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.top_k:
        body["top_k"] = sampling.top_k
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.stop_token_ids:
        body["stop_token_ids"] = list(sampling.stop_token_ids)
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    return body


def completions_request(model: str, prompt_token_ids: list[int], sampling: SamplingParams) -> dict[str, Any]:
    """The ``/v1/completions`` body for a token-id prompt."""
    return {
        "model": model,
        "prompt": list(prompt_token_ids),
        **sampling_body(sampling),
        "logprobs": 1,
        "return_token_ids": True,
        "skip_special_tokens": False,
    }


def parse_completion(data: dict[str, Any], policy_version: int) -> Completion:
    """A :class:`Completion` from a ``/v1/completions`` response (see the module docstring)."""
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise PolicyBackendError(f"malformed completions response: {str(data)[:200]}") from None
    finish = choice.get("finish_reason")
    if finish not in ("stop", "length"):
        raise PolicyBackendError(f"the server ended the request with finish_reason={finish!r}")
    logprobs = choice.get("logprobs") or {}
    token_ids = choice.get("token_ids")
    if token_ids is None:
        tokens = logprobs.get("tokens") or []
        if tokens and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            token_ids = [int(t.split(":", 1)[1]) for t in tokens]
    if token_ids is None:
        raise TokenIdsUnavailableError(
            "the server returned text but no token ids. Token-level training needs the sampled ids: "
            "use a server that honours return_token_ids (vLLM >= 0.10.2, `agentrl serve`) or start vLLM "
            "with --return-tokens-as-token-ids; for evaluation only, use OpenAIChatPolicy."
        )
    values = logprobs.get("token_logprobs")
    if values is None or len(values) != len(token_ids):
        raise TokenIdsUnavailableError("the server returned no logprobs for the sampled tokens (send logprobs=1)")
    return Completion(
        token_ids=[int(t) for t in token_ids],
        logprobs=[float(v) for v in values],
        finish_reason=finish,
        policy_version=policy_version,
        text=choice.get("text"),
    )


class _HTTPPolicy:
    """Shared HTTP plumbing: one aiohttp session, typed errors."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_context_tokens: int | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_context = max_context_tokens
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        #: Set by whoever pushes new weights to the server (the trainer).
        self.policy_version = 0

    @property
    def max_context_tokens(self) -> int | None:
        return self._max_context

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._session = aiohttp.ClientSession(headers=headers, timeout=self.timeout)
            self._session_loop = loop
        try:
            async with self._session.post(self.base_url + path, json=body) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PolicyBackendError(f"POST {self.base_url + path} failed: {type(exc).__name__}: {exc}") from exc
        if status == 429 or status >= 500:
            raise PolicyBackendError(f"POST {path}: HTTP {status}: {text[:300]}")
        if status >= 400:
            if any(hint in text.lower() for hint in _CONTEXT_HINTS):
                raise ContextOverflowError(text[:300])
            raise PolicyError(f"POST {path}: HTTP {status}: {text[:300]}")
        try:
            return json.loads(text)
        except ValueError:
            raise PolicyBackendError(f"POST {path}: response is not JSON: {text[:200]}") from None


class OpenAIPolicy(_HTTPPolicy):
    """Token-level policy over ``/v1/completions`` (see the module docstring)."""

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        version = self.policy_version
        data = await self._post("/completions", completions_request(self.model, prompt_token_ids, sampling))
        return parse_completion(data, version)


class OpenAIChatPolicy(_HTTPPolicy):
    """Chat-only policy over ``/v1/chat/completions``: text in, text out (evaluation only)."""

    async def chat(
        self, messages: list[dict[str, Any]], sampling: SamplingParams, tools: list[dict] | None = None
    ) -> Completion:
        body = {"model": self.model, "messages": messages, **sampling_body(sampling)}
        if tools:
            body["tools"] = tools
        data = await self._post("/chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError):
            raise PolicyBackendError(f"malformed chat response: {str(data)[:200]}") from None
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(token_ids=[], logprobs=[], finish_reason=finish, policy_version=self.policy_version, text=text)

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        raise TokenIdsUnavailableError(
            "OpenAIChatPolicy is chat-only: it cannot sample from token ids, and token-level training "
            "needs the sampled ids and logprobs. Train with OpenAIPolicy (/v1/completions with token "
            "ids) or HFPolicy/VLLMPolicy; evaluate chat-only models with run_actor + ChatActor."
        )
