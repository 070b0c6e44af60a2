"""SmolLM2-135M-Instruct (``model.name: smollm2-135m-instruct``): exact token accounting with its
real 49k BPE tokenizer and ChatML template, and one LoRA RL step of the real model.

Opt-in: ``bash scripts/get_smollm2.sh``; without it every test here skips and says so.
"""

import resource
import time

import pytest

from agentrl.policy import ChatRenderer
from agentrl.policy.models import ModelNotInstalled, smollm2_folder

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def folder():
    try:
        return smollm2_folder()
    except ModelNotInstalled as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tok(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def encode(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def canonical(tok, messages, template=None):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template)
    return encode(tok, text)


def test_the_real_tokenizer_and_template(tok):
    assert len(tok) == 49152
    renderer = ChatRenderer(tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert renderer.stop_token_ids[0] == im_end
    assert renderer.assistant_tail_ids == [im_end, *encode(tok, "\n")]
    # No system message: the template inserts SmolLM's default one.
    conv = renderer.start("", "Find the goal.")
    assert renderer.decode(conv.prompt_ids()).startswith(f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n")


@pytest.mark.parametrize("system", ["Be brief.", ""])
def test_full_context_stream_is_the_templates_render_and_the_mask_is_the_sampled_tokens(tok, system):
    renderer = ChatRenderer(tok)
    conv = renderer.start(system, "You are in room 2. Open door[1] or door[2].")
    history = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "You are in room 2. Open door[1] or door[2]."}
    ]
    assert conv.prompt_ids() == canonical(tok, history)
    sampled = []
    for action, observation in (("door[1]", "Nothing behind this door."), ("  door[2] ", "The door pays.")):
        start = len(conv.ids)
        completion = encode(tok, action) + [tok.convert_tokens_to_ids("<|im_end|>")]
        assert conv.add_completion(completion) == action
        conv.add_observation(observation)
        sampled += list(range(start, start + len(completion)))
        history += [{"role": "assistant", "content": action}, {"role": "user", "content": observation}]
        text = tok.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
        assert renderer.decode(conv.ids) == text  # the template's render, character for character
        assert conv.ids[start : start + len(completion)] == completion  # the sampled ids, verbatim
        if action == action.strip():
            assert conv.ids == canonical(tok, history)  # and here token for token too
        else:
            # Re-tokenizing the text would merge the header's "\n" with the leading spaces the
            # policy sampled as their own tokens: the ids it was trained on would not be the ones
            # it sampled. The stream keeps the sampled ids.
            assert conv.ids != canonical(tok, history)
    assert [i for i, m in enumerate(conv.loss_mask) if m] == sampled
    assert (conv.segment, conv.segment_breaks) == (0, 0)


def test_a_history_rewriting_version_of_its_template_starts_a_new_segment(tok):
    # SmolLM2's template, Qwen3-style: earlier assistant turns lose their <think> block.
    rewriting = tok.chat_template.replace(
        "message['content'] + '<|im_end|>'",
        "(message['content'].split('</think>')[-1] if message['role'] == 'assistant' and not loop.last "
        "else message['content']) + '<|im_end|>'",
    )
    assert rewriting != tok.chat_template
    tok_rw = type(tok).from_pretrained(tok.name_or_path)
    tok_rw.chat_template = rewriting
    renderer = ChatRenderer(tok_rw)
    conv = renderer.start("", "Find the goal.")
    conv.add_completion(encode(tok, "<think>left is a wall</think>move[up]") + [tok.convert_tokens_to_ids("<|im_end|>")])
    conv.add_observation("You moved up.")
    assert (conv.segment, conv.segment_breaks) == (1, 1)
    history = [{"role": "user", "content": "Find the goal."}, {"role": "assistant", "content": "move[up]"},
               {"role": "user", "content": "You moved up."}]
    assert conv.ids == canonical(tok, history, rewriting) and sum(conv.loss_mask) == 0
    conv.add_completion(encode(tok, "move[down]") + [tok.convert_tokens_to_ids("<|im_end|>")])
    conv.add_observation("You moved down.")
    assert conv.segment_breaks == 1  # no think block: the stream extends again


@pytest.mark.slow
def test_one_lora_rl_step_of_the_real_model(folder, tok):
    """One PPO step with LoRA (r 8) on two 2-turn conversations; time and peak memory printed.

    Measured on 2 shared cores: see agentrl/train/README.md (SmolLM2 section).
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from agentrl.train.config import LoraSettings, OptimConfig, PolicyLossConfig
    from agentrl.train.learner import Learner, apply_lora
    from agentrl.train.rows import TokenRow

    torch.set_num_threads(1)
    start = time.perf_counter()
    model = apply_lora(AutoModelForCausalLM.from_pretrained(folder).eval(), LoraSettings(r=8, alpha=16))
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad and "layers.0." in n}
    renderer = ChatRenderer(tok)
    rows = []
    for sign, action in ((1.0, "door[2]"), (-1.0, "door[1]")):
        conv = renderer.start("", "You are in room 1. Open door[1] or door[2].")
        conv.add_completion(encode(tok, action) + [tok.convert_tokens_to_ids("<|im_end|>")])
        ids = torch.tensor([conv.ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        rows.append(TokenRow(conv.ids, conv.loss_mask, [0.0, *logp.tolist()], [sign] * len(conv.ids)))
    learner = Learner(model, OptimConfig(lr=1e-4, precision="fp32"), PolicyLossConfig(kl_coef=0.01), pad_id=0)
    loaded = time.perf_counter()
    stats = learner.update(rows)
    seconds = time.perf_counter() - loaded
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nSmolLM2 LoRA step: load {loaded - start:.1f} s, update {seconds:.1f} s, peak RSS {peak_gib:.2f} GiB, {stats}")
    assert stats["trained_tokens"] == sum(sum(r.mask) for r in rows)
    assert abs(stats["approx_kl"]) < 1e-6  # the first step starts at ratio 1: the sampler's logprobs
    assert np.isfinite(stats["loss"]) and stats["grad_norm"] > 0
    for name, value in base.items():  # only adapters train
        assert torch.equal(dict(model.named_parameters())[name], value), name
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora and any(p.abs().sum() > 0 for p in lora)  # lora_B starts at 0: it moved
