"""`agentrl serve` against bad requests, without a key, with stream: true, and on a busy or public address."""

import asyncio
import socket

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from agentrl.cli import main
from agentrl.policy import HFPolicy, PolicyBackendError
from agentrl.policy.batching import DynamicBatcher
from agentrl.policy.serve import build_app


async def post(session, server, body, headers=None):
    async with session.post(server.make_url("/v1/completions"), json=body, headers=headers or {}) as resp:
        return resp.status, await resp.json()


async def test_one_bad_token_id_fails_only_its_own_request(model, tokenizer):
    policy = HFPolicy(model, tokenizer, max_batch_size=4, max_wait_s=0.3)  # the three requests share a batch
    good = tokenizer("How much do 3 apples cost?").input_ids
    async with TestServer(build_app(policy, tokenizer)) as server, aiohttp.ClientSession() as session:
        bodies = [{"prompt": good, "max_tokens": 3}, {"prompt": [*good, len(tokenizer) + 7], "max_tokens": 3},
                  {"prompt": good, "max_tokens": 3, "seed": 1}]
        (s1, r1), (s2, r2), (s3, r3) = await asyncio.gather(*(post(session, server, b) for b in bodies))
    await policy.aclose()
    assert (s1, s3) == (200, 200) and r1["choices"][0]["finish_reason"] == r3["choices"][0]["finish_reason"] == "length"
    assert s2 == 400
    assert r2["error"]["message"] == f"prompt: token id {len(tokenizer) + 7} at position {len(good)} is outside the vocabulary (0..{len(tokenizer) - 1})"


async def test_a_failing_batch_is_retried_request_by_request():
    calls = []

    def run_batch(items):
        calls.append(list(items))
        if any(i < 0 for i in items):
            raise IndexError("index out of range in self")
        return [i * 10 for i in items]

    batcher = DynamicBatcher(run_batch, max_batch_size=3, max_wait_s=0.3)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, -1, 2)), return_exceptions=True)
    await batcher.aclose()
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], PolicyBackendError) and "IndexError: index out of range" in str(results[1])
    assert calls[0] == [1, -1, 2] and sorted(calls[1:]) == [[-1], [1], [2]]


async def test_api_key_and_stream(policy, tokenizer):
    prompt = tokenizer("hi").input_ids
    async with TestServer(build_app(policy, tokenizer, api_key="s3cret")) as server, aiohttp.ClientSession() as session:
        status, body = await post(session, server, {"prompt": prompt, "max_tokens": 1})
        assert status == 401 and "API key" in body["error"]["message"]
        status, _ = await post(session, server, {"prompt": prompt, "max_tokens": 1}, {"Authorization": "Bearer nope"})
        assert status == 401
        async with session.get(server.make_url("/v1/models")) as resp:
            assert resp.status == 401
        key = {"Authorization": "Bearer s3cret"}
        status, _ = await post(session, server, {"prompt": prompt, "max_tokens": 1}, key)
        assert status == 200
        status, body = await post(session, server, {"prompt": prompt, "max_tokens": 1, "stream": True}, key)
        assert status == 400 and body["error"]["message"] == "stream: streaming is not supported; send stream: false"
        chat = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with session.post(server.make_url("/v1/chat/completions"), json=chat, headers=key) as resp:
            assert resp.status == 400
    await policy.aclose()


def test_a_public_bind_warns_and_a_busy_port_is_one_line():
    with socket.create_server(("0.0.0.0", 0)) as busy:
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", str(port)])
    assert result.exit_code == 1
    assert "warning: --host 0.0.0.0 is reachable from other machines and no --api-key is set" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: cannot listen on 0.0.0.0:{port}: Address already in use"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_a_loopback_bind_does_not_warn(host):
    with socket.create_server(("::1" if ":" in host else "127.0.0.1", 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET) as busy:
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--host", host, "--port", str(port)])
    assert result.exit_code == 1 and "warning" not in result.stderr and "Address already in use" in result.stderr


def test_a_missing_model_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "nope"), "--port", "0"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: --model: model folder {str(tmp_path / 'nope')!r} does not exist"


def test_a_model_folder_without_a_tokenizer_is_one_line_for_serve_and_train(tmp_path, model):
    """The same check as eval's (agentrl.policy.models.load_tokenizer), not transformers' 'Couldn't
    instantiate the backend tokenizer from one of: ...'."""
    folder = tmp_path / "no_tokenizer"
    model.save_pretrained(folder)
    line = f"{str(folder)!r} holds no tokenizer (no tokenizer.json or tokenizer_config.json)"
    served = CliRunner().invoke(main, ["serve", "--model", str(folder), "--port", "0"])
    assert served.exit_code == 1 and served.stderr.strip() == f"Error: --model: {line}", served.stderr
    trained = CliRunner().invoke(
        main, ["train", "--no-progress", "-o", str(tmp_path / "run"), "--steps", "0", "--set", f"model.name={folder}"]
    )
    assert trained.exit_code == 1 and trained.stderr.strip() == f"Error: {line}", trained.stderr
