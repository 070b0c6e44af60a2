"""`agentrl serve`: an OpenAI-compatible HTTP server in front of any :class:`Policy`.

Endpoints (the subset agents and evaluators use):

``GET /v1/models``
``POST /v1/completions``
    ``prompt`` as text or token ids; returns ``choices[0].text``, ``token_ids`` (when
    ``return_token_ids`` is true, as vLLM does), ``logprobs.tokens`` / ``token_logprobs`` (when
    ``logprobs`` is set) and ``finish_reason``. ``top_k`` and ``stop_token_ids`` are accepted
    (vLLM extensions). A prompt that fills the context is a 400 ``context_length_exceeded``.
``POST /v1/chat/completions``
    ``messages`` (and ``tools``) rendered with the tokenizer's chat template; the reply's
    ``message.content`` is the completion without the end-of-turn marker.

Requests are validated with pydantic at the edge: a bad field is a 400 naming it, and so is a
prompt token id outside the tokenizer's vocabulary (it would otherwise fail inside the model).
``stream: true`` is refused with a 400 (replies are whole). With ``api_key`` set every request
needs ``Authorization: Bearer <key>`` (401 otherwise). Concurrent requests reach the policy
concurrently, so :class:`HFPolicy` batches them; a request that fails fails alone, not its batch.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import PreTrainedTokenizerBase

from agentrl.policy.base import ContextOverflowError, Policy, PolicyError, SamplingParams
from agentrl.types import new_id


class _SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = ""
    max_tokens: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=-1)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False

    def sampling(self, extra_stop_ids: tuple[int, ...] = ()) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=max(self.top_k, 0),
            stop=tuple(stop),
            stop_token_ids=tuple(self.stop_token_ids or ()) + extra_stop_ids,
            seed=self.seed,
        )


class CompletionRequest(_SamplingFields):
    prompt: str | list[int]
    logprobs: int | None = None
    return_token_ids: bool = False


class ChatRequest(_SamplingFields):
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None


def _error(status: int, message: str, code: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": code}}, status=status)


def build_app(
    policy: Policy, tokenizer: PreTrainedTokenizerBase, model_name: str = "agentrl", api_key: str | None = None
) -> web.Application:
    """The aiohttp application serving ``policy`` (see the module docstring)."""
    from agentrl.policy.render import ChatRenderer

    renderer = ChatRenderer(tokenizer) if getattr(tokenizer, "chat_template", None) else None
    vocab = len(tokenizer)

    @web.middleware
    async def require_key(request: web.Request, handler):
        sent = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(sent, f"Bearer {api_key}".encode()):
            return _error(401, "a valid API key is required: send Authorization: Bearer <key>", "invalid_api_key")
        return await handler(request)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    async def parse(request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
        try:
            body = model.model_validate(await request.json())
        except ValidationError as exc:
            return _error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        except ValueError as exc:  # the body is not JSON
            return _error(400, f"the body is not JSON: {exc}")
        if body.stream:
            return _error(400, "stream: streaming is not supported; send stream: false")
        return body

    def out_of_vocabulary(prompt_ids: list[int]) -> web.Response | None:
        for position, token in enumerate(prompt_ids):
            if not 0 <= token < vocab:
                return _error(400, f"prompt: token id {token} at position {position} is outside the vocabulary "
                                   f"(0..{vocab - 1})")
        return None

    async def sample(prompt_ids: list[int], sampling: SamplingParams):
        try:
            return await policy.generate(prompt_ids, sampling), None
        except ContextOverflowError as exc:
            return None, _error(400, f"maximum context length exceeded: {exc}", "context_length_exceeded")
        except PolicyError as exc:
            return None, _error(500, str(exc), "backend_error")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model_name, "object": "model"}]})

    async def completions(request: web.Request) -> web.Response:
        body = await parse(request, CompletionRequest)
        if isinstance(body, web.Response):
            return body
        prompt_ids = (
            list(body.prompt) if isinstance(body.prompt, list) else tokenizer(body.prompt, add_special_tokens=False).input_ids
        )
        if not prompt_ids:
            return _error(400, "prompt is empty")
        if (bad := out_of_vocabulary(prompt_ids)) is not None:
            return bad
        completion, failure = await sample(prompt_ids, body.sampling())
        if failure is not None:
            return failure
        choice: dict[str, Any] = {"index": 0, "text": decode(completion.token_ids), "finish_reason": completion.finish_reason}
        if body.logprobs is not None:
            choice["logprobs"] = {
                "tokens": [decode([t]) for t in completion.token_ids],
                "token_logprobs": completion.logprobs,
                "top_logprobs": None,
            }
        if body.return_token_ids:
            choice["token_ids"] = completion.token_ids
            choice["prompt_token_ids"] = prompt_ids
        return web.json_response(_envelope("text_completion", body.model or model_name, choice, prompt_ids, completion))

    async def chat(request: web.Request) -> web.Response:
        if renderer is None:
            return _error(400, "the served tokenizer has no chat template")
        body = await parse(request, ChatRequest)
        if isinstance(body, web.Response):
            return body
        text = renderer.render_text(body.messages, body.tools, generation_prompt=True)
        prompt_ids = renderer.encode(text)
        completion, failure = await sample(prompt_ids, body.sampling(renderer.stop_token_ids))
        if failure is not None:
            return failure
        ids = completion.token_ids
        if ids and ids[-1] in renderer.stop_token_ids:
            ids = ids[:-1]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": decode(ids)},
            "finish_reason": completion.finish_reason,
        }
        return web.json_response(_envelope("chat.completion", body.model or model_name, choice, prompt_ids, completion))

    app = web.Application(middlewares=[require_key] if api_key else [])
    app.add_routes(
        [web.get("/v1/models", models), web.post("/v1/completions", completions), web.post("/v1/chat/completions", chat)]
    )
    return app


def _envelope(kind: str, model: str, choice: dict, prompt_ids: list[int], completion) -> dict[str, Any]:
    return {
        "id": f"cmpl-{new_id()}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": len(completion.token_ids),
            "total_tokens": len(prompt_ids) + len(completion.token_ids),
        },
    }
