"""HFPolicy against a real tiny transformers model on CPU."""

import asyncio
import math

import pytest
import torch

from agentrl.policy import ContextOverflowError, HFPolicy, SamplingParams


def forward_logprobs(model, prompt, completion, temperature=1.0):
    """Log-probabilities of ``completion`` given ``prompt`` from one plain forward pass."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0].float() / temperature
    logp = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1]
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0]


async def test_concurrent_requests_are_batched_and_logprobs_match_a_forward_pass(policy, model, tokenizer):
    prompts = [tokenizer(text).input_ids for text in ("a", "move[up] please", "the quick brown fox jumps", "42")]
    prompts += prompts[:2]
    sampling = [SamplingParams(max_tokens=6, temperature=t, seed=i) for i, t in enumerate((1.0, 0.7, 1.3, 1.0, 1.0, 2.0))]
    outs = await asyncio.gather(*(policy.generate(p, s) for p, s in zip(prompts, sampling)))
    # 6 concurrent requests, max_batch_size 4 -> two batched forward loops.
    assert policy.stats == {**policy.stats, "batches": 2, "requests": 6}
    for prompt, s, out in zip(prompts, sampling, outs):
        assert len(out.token_ids) == 6 and out.finish_reason == "length"
        expected = forward_logprobs(model, prompt, out.token_ids, s.temperature)
        assert torch.allclose(torch.tensor(out.logprobs), expected, atol=1e-4)


async def test_seeded_requests_reproduce_and_greedy_is_argmax(policy, model, tokenizer):
    prompt = tokenizer("You are in a grid maze.").input_ids
    a = await policy.generate(prompt, SamplingParams(max_tokens=5, seed=7))
    b = await policy.generate(prompt, SamplingParams(max_tokens=5, seed=7))
    assert a.token_ids == b.token_ids
    greedy = await policy.generate(prompt, SamplingParams(max_tokens=5, temperature=0))
    ids = list(prompt)
    for token in greedy.token_ids:
        with torch.no_grad():
            assert token == int(model(torch.tensor([ids])).logits[0, -1].argmax())
        ids.append(token)
    top1 = await policy.generate(prompt, SamplingParams(max_tokens=5, top_k=1, seed=3))
    assert top1.token_ids == greedy.token_ids


async def test_stop_token_ends_the_turn_and_is_kept(policy, tokenizer):
    prompt = tokenizer("Answer the shopping question.").input_ids
    greedy = await policy.generate(prompt, SamplingParams(max_tokens=6, temperature=0))
    stop_at = greedy.token_ids.index(greedy.token_ids[2])  # first occurrence of the third token
    stopped = await policy.generate(
        prompt, SamplingParams(max_tokens=6, temperature=0, stop_token_ids=(greedy.token_ids[stop_at],))
    )
    assert stopped.token_ids == greedy.token_ids[: stop_at + 1]
    assert stopped.finish_reason == "stop"
    text = tokenizer.decode(greedy.token_ids[:2])
    by_string = await policy.generate(prompt, SamplingParams(max_tokens=6, temperature=0, stop=(text,)))
    assert by_string.token_ids == greedy.token_ids[:2] and by_string.finish_reason == "stop"


async def test_context_limit_caps_the_budget_and_overflow_raises(model, tokenizer):
    policy = HFPolicy(model, tokenizer, max_context_tokens=10)
    out = await policy.generate(list(range(3, 11)), SamplingParams(max_tokens=5))
    assert len(out.token_ids) == 2 and out.finish_reason == "length"
    with pytest.raises(ContextOverflowError):
        await policy.generate(list(range(3, 13)), SamplingParams(max_tokens=5))


async def test_policy_version_is_recorded_and_weights_are_shared(policy, tokenizer):
    prompt = tokenizer("hello").input_ids
    before = await policy.generate(prompt, SamplingParams(max_tokens=3, temperature=0))
    assert before.policy_version == 0
    norm = policy.model.model.norm.weight
    with policy.weights_lock:
        original = norm.data.clone()
        norm.data.zero_()  # every logit becomes 0: greedy picks id 0, each logprob is -ln(vocab)
        assert policy.bump_version() == 1
    try:
        after = await policy.generate(prompt, SamplingParams(max_tokens=3, temperature=0))
    finally:
        with policy.weights_lock:
            norm.data.copy_(original)
    assert after.policy_version == 1
    assert after.token_ids == [0, 0, 0] != before.token_ids
    assert after.logprobs == pytest.approx([-math.log(len(tokenizer))] * 3, abs=1e-5)
