"""Partial rollouts in the in-process HF sampler: a weight update cuts a turn mid-decode, and the
turn goes on under the new weights with a version per token (real tiny transformers model, CPU)."""

import asyncio
import copy
import json
import threading
import time
from pathlib import Path

import pytest
import torch
from agentrl_envs.toy import MazeEnv

from agentrl.policy import HFPolicy, SamplingParams
from agentrl.rollout import GroupSpec, RolloutBatch, RolloutConfig, RolloutEngine
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer
from agentrl.types import StepRecord

TODAY = Path(__file__).parent / "data" / "hf_no_update.json"


def perturbed(model, seed: int):
    new = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return new


def forward_logprobs(model, prompt, completion, temperature=1.0) -> torch.Tensor:
    """log_softmax(logits / T)[token] of each completion token, from one plain forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + completion])).logits[0].float() / temperature
    logp = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1]
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0]


def per_token_error(models, prompt, out, temperature=1.0) -> float:
    """Largest gap between a recorded logprob and the one the token's recorded version gives."""
    versions = out.token_versions or [out.policy_version] * len(out.token_ids)
    by_version = {v: forward_logprobs(m, prompt, out.token_ids, temperature) for v, m in models.items()}
    return max(abs(by_version[v][i].item() - out.logprobs[i]) for i, v in enumerate(versions))


def cut_at_forward(policy: HFPolicy, n: int) -> threading.Event:
    """Ask for an update from inside the decoder at its ``n``-th forward (a deterministic cut:
    each unfinished row has exactly ``n`` tokens from the old weights). The hold is the test's:
    release it with ``policy.resume()`` after the update."""
    calls, cut = [0], threading.Event()

    def hook(module, args, kwargs):
        calls[0] += 1
        if calls[0] == n:
            policy.weights_lock.hold()
            cut.set()

    policy.model.register_forward_pre_hook(hook, with_kwargs=True)
    return cut


async def cut_and_update(policy, requests, n, weights, version):
    """Decode ``requests`` together; at forward ``n`` load ``weights`` as ``version``."""
    cut = cut_at_forward(policy, n)
    turns = asyncio.gather(*(policy.generate(p, s) for p, s in requests))
    assert await asyncio.to_thread(cut.wait, 60), "the decoder never reached the cut"
    assert await policy.sync_weights(weights, version) == version
    policy.resume()
    return await turns


def test_a_turn_no_update_cuts_is_decoded_as_before(model, tokenizer):
    """The reference outputs were taken with the code before mid-decode interruption existed
    (tests/policy/data/hf_no_update.json: 6 requests in one batch, seeded sampling, top-k/top-p,
    greedy, a stop string)."""
    cases = json.loads(TODAY.read_text())

    async def decode():
        policy = HFPolicy(model, tokenizer, max_batch_size=8, max_wait_s=0.05)
        try:
            return await asyncio.gather(*(
                policy.generate(tokenizer(c["prompt"]).input_ids, SamplingParams(**c["sampling"])) for c in cases
            ))
        finally:
            await policy.aclose()

    outs = asyncio.run(decode())
    assert [o.token_ids for o in outs] == [c["token_ids"] for c in cases]
    assert [o.finish_reason for o in outs] == [c["finish_reason"] for c in cases]
    for out, case in zip(outs, cases):
        assert out.logprobs == pytest.approx(case["logprobs"], abs=1e-6, rel=0)
        assert out.policy_version == 0 and out.token_versions is None


async def test_an_update_with_the_same_weights_cuts_the_turn_and_changes_no_token(model, tokenizer):
    """Cut at token 6 and resumed under an identical copy of the weights: every row's tokens are
    the uncut turn's (the prompt + tokens so far as the new prefix, the row's own generator
    stream continuing, the remaining budget), the rows already done are untouched, and the
    versions say which weights sampled each token. A stop string that spans the cut still ends
    the turn: the check runs over the whole turn."""
    prompts = [tokenizer(t).input_ids for t in ("You are in a grid maze.", "42", "move[up] please")]
    uncut_policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=4, max_wait_s=0.05)
    sampling = [
        SamplingParams(max_tokens=14, seed=1),
        SamplingParams(max_tokens=3, seed=2),  # done before the cut
        SamplingParams(max_tokens=14, temperature=0.7, top_p=0.9, seed=3),
    ]
    uncut = await asyncio.gather(*(uncut_policy.generate(p, s) for p, s in zip(prompts, sampling)))
    # A stop string made of tokens 6 and 7 of row 0's uncut turn: it spans the cut after token 6.
    decode = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}  # as the stop check does
    stop = tokenizer.decode(uncut[0].token_ids[5:7], **decode)
    text = [tokenizer.decode(uncut[0].token_ids[:k], **decode) for k in range(15)]
    first_hit = next(k for k in range(15) if stop in text[k])
    assert first_hit == 7, "the seeds no longer give a stop string that spans the cut"
    sampling.append(sampling[0].model_copy(update={"stop": (stop,)}))
    prompts.append(prompts[0])
    uncut.append(uncut[0].model_copy(update={"token_ids": uncut[0].token_ids[:7], "logprobs": uncut[0].logprobs[:7],
                                             "finish_reason": "stop"}))

    policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=4, max_wait_s=0.05)
    outs = await cut_and_update(policy, list(zip(prompts, sampling)), 6, copy.deepcopy(model), version=1)
    assert [o.token_ids for o in outs] == [u.token_ids for u in uncut]
    assert [o.finish_reason for o in outs] == ["length", "length", "length", "stop"]
    for out, u in zip(outs, uncut):
        assert out.logprobs == pytest.approx(u.logprobs, abs=1e-5, rel=0)  # the resumed prefill, recomputed
    assert outs[1].token_versions is None and outs[1].policy_version == 0 and outs[1].logprobs == uncut[1].logprobs
    for out in (outs[0], outs[2], outs[3]):
        assert out.policy_version == 0 and out.token_versions == [0] * 6 + [1] * (len(out.token_ids) - 6)
    assert policy.policy_version == 1


async def test_each_token_logprob_is_that_of_the_weights_that_sampled_it(model, tokenizer):
    """Cut at token 5 and resumed under different weights: each logprob matches a fresh forward
    pass of its own version (< 1e-4); labelling the tokens after the cut with the old version
    would be caught (> 1e-2). The policy samples from its own copy (the trainer's overlapping
    modes), so the update is a load, not a bump."""
    old, new = copy.deepcopy(model), perturbed(model, seed=1)
    policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=4, max_wait_s=0.05)
    prompts = [tokenizer(t).input_ids for t in ("the quick brown fox jumps", "Answer the shopping question.")]
    sampling = [SamplingParams(max_tokens=12, seed=5), SamplingParams(max_tokens=12, temperature=1.3, seed=6)]
    outs = await cut_and_update(policy, list(zip(prompts, sampling)), 5, new.state_dict(), version=4)
    for prompt, s, out in zip(prompts, sampling, outs):
        assert len(out.token_ids) == 12 and out.token_versions == [0] * 5 + [4] * 7
        assert out.policy_version == 0  # the oldest: conservative staleness for the whole turn
        assert per_token_error({0: old, 4: new}, prompt, out, s.temperature) < 1e-4
        assert per_token_error({0: new, 4: old}, prompt, out, s.temperature) > 1e-2
    assert all(torch.equal(a, b) for a, b in zip(policy.model.parameters(), new.parameters()))


async def test_an_update_requested_mid_turn_waits_a_decode_step_not_the_turn(model, tokenizer):
    """sync_weights called from the event loop while a 24-token turn decodes (each forward slowed
    to 50 ms, so the turn takes >= 1.2 s): the update lands within a few tokens of the request and
    returns in well under the rest of the turn (waiting for the turn's end would take >= 0.75 s)."""
    policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=4, max_wait_s=0.01)
    forwards = [0]

    def slow(module, args, kwargs):
        forwards[0] += 1
        time.sleep(0.05)

    policy.model.register_forward_pre_hook(slow, with_kwargs=True)
    turn = asyncio.ensure_future(policy.generate(tokenizer("hello").input_ids, SamplingParams(max_tokens=24, seed=9)))
    while forwards[0] < 6:
        await asyncio.sleep(0.005)
    asked, start = forwards[0], time.perf_counter()
    await policy.sync_weights(perturbed(model, seed=2), version=1)
    waited = time.perf_counter() - start
    out = await turn
    old_tokens = out.token_versions.count(0)
    assert asked <= old_tokens <= asked + 3 and out.token_versions[old_tokens:] == [1] * (24 - old_tokens)
    assert len(out.token_ids) == 24 and waited < 0.5


async def test_per_token_versions_reach_the_step_and_the_batch(model, tokenizer, renderer):
    """Episodes on the maze with an update in the middle of their turns: the steps carry the
    versions of their tokens, the batch's per-token column equals them, and the step's version
    stays the oldest."""
    policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=4, max_wait_s=0.01)
    cut = cut_at_forward(policy, 30)
    config = RolloutConfig(group_size=2, sampling=SamplingParams(max_tokens=16, stop=("]",)), strict=True)
    engine = RolloutEngine(MazeEnv, policy, renderer, config)
    rollout = asyncio.ensure_future(engine.run([GroupSpec(seed=3)]))
    assert await asyncio.to_thread(cut.wait, 60), "the decoder never reached the cut"
    await policy.sync_weights(perturbed(model, seed=3), version=1)
    policy.resume()
    [group] = await rollout
    steps = [s for t in group.members for s in t.steps]
    cut_steps = [s for s in steps if s.token_versions is not None]
    assert cut_steps, "no turn was in flight at the cut"
    for s in cut_steps:
        k = s.token_versions.count(0)
        assert 0 < k < len(s.completion_token_ids) and s.token_versions == [0] * k + [1] * (len(s.token_versions) - k)
        assert s.policy_version == 0 and s.completion_versions() == s.token_versions
        assert StepRecord.model_validate_json(s.model_dump_json()) == s  # kept exactly in the JSONL log
    batch = RolloutBatch.from_groups([group])
    assert batch.layout.token_version.tolist() == [v for s in steps for v in s.completion_versions()]
    assert {1} <= set(batch.layout.token_version.tolist()) <= {0, 1}


def test_the_trainers_sync_cuts_a_turn_of_the_overlapping_sampler(tmp_path):
    """mode one_step_off in one process: the sampler decodes from its own copy; Trainer.sync_weights
    (the policy's one lock-and-load) cuts the turn in flight, and the rest of it comes from the
    learner's new weights."""
    config = load_config(overrides=[f"output_dir={tmp_path}", "mode=one_step_off", "sft.episodes=0", "model.device=cpu"])
    t = Trainer(config, progress=False, log=lambda *_: None)
    before = copy.deepcopy(t.model)
    with torch.no_grad():
        for p in t.model.parameters():  # the learner's update, while the rollout goes on
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    prompt = t.tokenizer("You are in a grid maze.").input_ids

    async def scenario():
        cut = cut_at_forward(t.policy, 5)
        turn = asyncio.ensure_future(t.policy.generate(prompt, SamplingParams(max_tokens=12, seed=1)))
        assert await asyncio.to_thread(cut.wait, 60), "the decoder never reached the cut"
        await t.sync_weights()
        t.policy.resume()
        return await turn

    out = asyncio.run(scenario())
    n = len(out.token_ids)
    assert n > 5 and out.token_versions == [0] * 5 + [1] * (n - 5) and t.policy.policy_version == 1
    assert per_token_error({0: before, 1: t.model}, prompt, out) < 1e-4
    assert per_token_error({0: t.model, 1: before}, prompt, out) > 1e-2
    assert all(torch.equal(a, b) for a, b in zip(t.sampler_model.parameters(), t.model.parameters()))


async def test_pauses_nest_and_a_resume_without_a_pause_is_refused(model, tokenizer):
    policy = HFPolicy(copy.deepcopy(model), tokenizer)
    await policy.pause()
    await policy.pause()
    turn = asyncio.ensure_future(policy.generate(tokenizer("hi").input_ids, SamplingParams(max_tokens=3, seed=1)))
    policy.resume()
    await asyncio.sleep(0.1)
    assert not turn.done()  # one pause still holds the decoder
    policy.resume()
    assert len((await turn).token_ids) == 3
    with pytest.raises(RuntimeError, match="resume\\(\\) without pause\\(\\)"):
        policy.resume()


def test_per_token_versions_are_checked():
    with pytest.raises(ValueError, match="token_versions needs one version per completion token"):
        StepRecord(index=0, observation="", action="", completion_token_ids=[1, 2], policy_version=0,
                   token_versions=[0])
    with pytest.raises(ValueError, match="their oldest"):
        StepRecord(index=0, observation="", action="", completion_token_ids=[1, 2], policy_version=1,
                   token_versions=[0, 1])
    step = StepRecord(index=0, observation="", action="", completion_token_ids=[1, 2], policy_version=2)
    assert step.completion_versions() == [2, 2]
