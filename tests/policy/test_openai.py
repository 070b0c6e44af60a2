"""The OpenAI-compatible client against a real local HTTP server running the tiny model."""

import aiohttp
import pytest
import torch
from agentrl_envs.toy import CalculatorEnv
from aiohttp import web
from aiohttp.test_utils import TestServer

from agentrl.policy import (
    ContextOverflowError,
    HFPolicy,
    PolicyBackendError,
    SamplingParams,
    TokenIdsUnavailableError,
)
from agentrl.policy.openai import OpenAIChatPolicy, OpenAIPolicy
from agentrl.policy.serve import build_app
from agentrl.rollout import ChatActor, TokenActor, run_actor


@pytest.fixture
async def server(policy, tokenizer):
    async with TestServer(build_app(policy, tokenizer, model_name="tiny")) as srv:
        yield srv


@pytest.fixture
async def client(server):
    client = OpenAIPolicy(str(server.make_url("/v1")), "tiny")
    yield client
    await client.aclose()


async def test_completions_with_token_ids_match_the_model(client, policy, model, tokenizer):
    prompt = tokenizer("How much do 3 apples cost?").input_ids
    sampling = SamplingParams(max_tokens=6, seed=5)
    remote = await client.generate(prompt, sampling)
    local = await policy.generate(prompt, sampling)
    assert remote.token_ids == local.token_ids and remote.finish_reason == "length"
    ids = torch.tensor([prompt + remote.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)[len(prompt) - 1 : -1]
    expected = logp.gather(1, torch.tensor(remote.token_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(remote.logprobs), expected, atol=1e-4)
    assert remote.text == tokenizer.decode(remote.token_ids)


async def test_a_multi_turn_episode_over_http_keeps_exact_tokens(client, renderer):
    sampling = SamplingParams(max_tokens=12, stop=("e", "a", " "))
    actor = TokenActor(client, renderer, sampling)
    traj = await run_actor(lambda: CalculatorEnv(max_invalid_actions=2), actor, seed=3, strict=True)
    assert traj.num_turns == 2 and traj.truncation == "invalid_actions"
    first, second = traj.steps
    sampled = first.prompt_token_ids + first.completion_token_ids
    assert second.prompt_token_ids[: len(sampled)] == sampled


async def test_context_overflow_and_unreachable_server_are_typed(model, tokenizer, renderer):
    small = HFPolicy(model, tokenizer, max_context_tokens=8)
    async with TestServer(build_app(small, tokenizer)) as srv:
        client = OpenAIPolicy(str(srv.make_url("/")), "tiny")
        with pytest.raises(ContextOverflowError):
            await client.generate(list(range(3, 13)), SamplingParams(max_tokens=4))
        port = srv.port
        await client.aclose()
    gone = OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "tiny", timeout_s=5)
    with pytest.raises(PolicyBackendError):
        await gone.generate([5, 6, 7], SamplingParams(max_tokens=2))
    traj = await run_actor(CalculatorEnv, TokenActor(gone, renderer, SamplingParams(max_tokens=2)), seed=1)
    assert traj.status == "infra_error" and traj.error.startswith("PolicyBackendError")
    await gone.aclose()


async def test_bad_requests_get_a_400_naming_the_field(server):
    async with aiohttp.ClientSession() as session:
        resp = await session.post(server.make_url("/v1/completions"), json={"prompt": [1], "max_tokens": 0})
        assert resp.status == 400
        assert "max_tokens" in (await resp.json())["error"]["message"]


async def test_servers_without_token_ids_are_refused_for_training(renderer):
    async def text_only(request):
        return web.json_response(
            {"choices": [{"text": "hi", "finish_reason": "stop", "logprobs": {"tokens": ["hi"], "token_logprobs": [-1.0]}}]}
        )

    app = web.Application()
    app.router.add_post("/v1/completions", text_only)
    async with TestServer(app) as srv:
        client = OpenAIPolicy(str(srv.make_url("/v1")), "m")
        with pytest.raises(TokenIdsUnavailableError, match="return_token_ids"):
            await client.generate([1, 2], SamplingParams())
        await client.aclose()


async def test_chat_only_mode_evaluates_but_cannot_train(server):
    chat = OpenAIChatPolicy(str(server.make_url("/v1")), "tiny")
    with pytest.raises(TokenIdsUnavailableError, match="token-level training needs"):
        await chat.generate([1, 2, 3], SamplingParams())
    sampling = SamplingParams(max_tokens=8, stop=("e", " "))
    traj = await run_actor(lambda: CalculatorEnv(max_invalid_actions=2), ChatActor(chat, sampling), seed=2, strict=True)
    assert traj.num_turns == 2 and traj.truncation == "invalid_actions"
    assert all(s.action and not s.completion_token_ids for s in traj.steps)
    await chat.aclose()
