"""VLLMPolicy without a GPU: lazy import, argument mapping, output parsing, weight-update sequencing.

vLLM itself cannot be installed on these CPU machines; the engine below is a stand-in with the
three methods VLLMPolicy calls (``generate``, ``collective_rpc``, ``reset_prefix_cache``).
"""

import asyncio
import importlib.util
from types import SimpleNamespace

import pytest
import torch

from agentrl.policy import PolicyBackendError, SamplingParams
from agentrl.policy.vllm import INSTALL_HINT, VLLMPolicy, completion_from_output, vllm_sampling_kwargs


def request_output(token_ids, logprobs, finish_reason="stop"):
    steps = [{t: SimpleNamespace(logprob=lp)} for t, lp in zip(token_ids, logprobs)]
    return SimpleNamespace(outputs=[SimpleNamespace(token_ids=token_ids, logprobs=steps, finish_reason=finish_reason,
                                                    text="txt")])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_missing_vllm_gives_an_install_hint():
    with pytest.raises(ImportError, match="pip install 'agentrl\\[vllm\\]'"):
        VLLMPolicy("Qwen/Qwen2.5-0.5B-Instruct")
    assert "GPU" in INSTALL_HINT


def test_sampling_params_map_onto_vllm_arguments():
    sampling = SamplingParams(max_tokens=64, temperature=0.7, top_p=0.9, stop=("</answer>",), stop_token_ids=(2,), seed=3)
    assert vllm_sampling_kwargs(sampling, max_tokens=10) == {
        "n": 1, "max_tokens": 10, "temperature": 0.7, "top_p": 0.9, "top_k": -1, "stop": ["</answer>"],
        "stop_token_ids": [2], "seed": 3, "logprobs": 0, "skip_special_tokens": False,
    }
    assert vllm_sampling_kwargs(SamplingParams(top_k=20))["top_k"] == 20


def test_request_output_becomes_a_completion():
    completion = completion_from_output(request_output([5, 9, 2], [-0.5, -1.25, -0.125]), policy_version=4)
    assert (completion.token_ids, completion.logprobs) == ([5, 9, 2], [-0.5, -1.25, -0.125])
    assert completion.finish_reason == "stop" and completion.policy_version == 4
    with pytest.raises(PolicyBackendError, match="abort"):
        completion_from_output(request_output([5], [-1.0], "abort"), 0)


class StandInEngine:
    def __init__(self):
        self.release = asyncio.Event()
        self.log = []

    async def generate(self, prompt, params, request_id):
        self.log.append(("generate", request_id, params["max_tokens"]))
        await self.release.wait()
        yield request_output([7, 8], [-0.25, -0.5], "length")

    async def collective_rpc(self, method, args=()):
        model = torch.nn.Linear(2, 2, bias=False)
        model.load_weights = lambda weights: model.load_state_dict(dict(weights))
        method(SimpleNamespace(model_runner=SimpleNamespace(model=model)), *args)
        self.log.append(("load_weights", model.weight.sum().item()))

    async def reset_prefix_cache(self):
        self.log.append(("reset_prefix_cache",))


async def test_weight_update_waits_for_requests_in_flight_and_pauses_new_ones():
    engine = StandInEngine()
    policy = VLLMPolicy(engine=engine, max_context_tokens=100)
    first = asyncio.create_task(policy.generate([1, 2, 3], SamplingParams(max_tokens=2)))
    await asyncio.sleep(0.01)
    update = asyncio.create_task(policy.sync_weights({"weight": torch.ones(2, 2)}))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(policy.generate([1, 2], SamplingParams(max_tokens=2)))
    await asyncio.sleep(0.01)
    assert not update.done() and [e[0] for e in engine.log] == ["generate"]  # update waits, second paused
    engine.release.set()
    assert (await first).policy_version == 0
    assert await update == 1
    assert (await second).policy_version == 1
    assert [e[0] for e in engine.log] == ["generate", "load_weights", "reset_prefix_cache", "generate"]
    assert engine.log[1][1] == 4.0  # the pushed tensor reached the worker's model
    # A module works the same, with the version given; a pause held by the caller (the sampler
    # server's pause / load / resume) keeps requests waiting until its own resume.
    await policy.pause()
    assert await policy.sync_weights(torch.nn.Linear(2, 2, bias=False).requires_grad_(False), version=7) == 7
    third = asyncio.create_task(policy.generate([1], SamplingParams(max_tokens=2)))
    await asyncio.sleep(0.01)
    assert [e[0] for e in engine.log][-1] == "reset_prefix_cache"  # still paused: third waits
    policy.resume()
    completion = await third
    assert completion.policy_version == 7 and completion.token_versions is None  # one version per turn
