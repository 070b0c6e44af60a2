"""Exact token accounting of the chat renderer (tiny byte-level BPE, ChatML template)."""

import pytest

from agentrl.policy import ChatRenderer, RenderError
from agentrl.policy.tiny import CHATML_TEMPLATE, build_tiny_tokenizer

# Qwen3-style: assistant turns before the last message lose their <think> block.
THINK_STRIPPING = CHATML_TEMPLATE.replace(
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}",
    "{%- set content = message.content.split('</think>')[-1] "
    "if (message.role == 'assistant' and not loop.last) else message.content %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}",
)


def encode(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def canonical(tok, messages):
    return encode(tok, tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def test_observation_delta_extends_the_stream_exactly(renderer, tokenizer):
    conv = renderer.start("Be brief.", "Find the goal.")
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Find the goal."}]
    prompt = conv.prompt_ids()
    assert prompt == canonical(tokenizer, history)
    completion = encode(tokenizer, "move[up]") + [tokenizer.eos_token_id]
    assert conv.add_completion(completion) == "move[up]"
    conv.add_observation("You moved up.")
    history += [{"role": "assistant", "content": "move[up]"}, {"role": "user", "content": "You moved up."}]
    assert conv.ids == canonical(tokenizer, history)
    assert conv.ids[len(prompt) : len(prompt) + len(completion)] == completion
    mask = conv.loss_mask
    assert len(mask) == len(conv.ids)
    assert [i for i, m in enumerate(mask) if m] == list(range(len(prompt), len(prompt) + len(completion)))
    assert (conv.segment, conv.segment_breaks) == (0, 0)


def test_sampled_tokenization_is_kept_verbatim(renderer, tokenizer):
    conv = renderer.start("", "Find the goal.")
    prompt = conv.prompt_ids()
    # One token per character: not how the tokenizer would encode "move[up]", but what was sampled.
    chars = [tokenizer.convert_tokens_to_ids(c) for c in "move[up]"]
    assert chars != encode(tokenizer, "move[up]")
    conv.add_completion(chars + [tokenizer.eos_token_id])
    conv.add_observation("ok")
    assert conv.ids[len(prompt) : len(prompt) + 9] == chars + [tokenizer.eos_token_id]
    assert conv.segment_breaks == 0  # same text, different ids: not a template rewrite
    assert renderer.decode(conv.ids) == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Find the goal."}, {"role": "assistant", "content": "move[up]"},
         {"role": "user", "content": "ok"}],
        tokenize=False,
        add_generation_prompt=True,
    )


def test_a_turn_cut_before_its_end_marker_gets_an_untrained_one(renderer, tokenizer):
    conv = renderer.start("", "Find the goal.")
    completion = encode(tokenizer, "move")  # cut by length: no <|im_end|>
    conv.add_completion(completion)
    end = len(conv.ids)
    conv.add_observation("Invalid action.")
    newline = encode(tokenizer, "\n")
    assert conv.ids[end : end + 1 + len(newline)] == [tokenizer.eos_token_id] + newline
    assert conv.loss_mask[end : end + 1 + len(newline)] == [0] * (1 + len(newline))
    assert sum(conv.loss_mask) == len(completion)


def test_a_template_that_rewrites_history_starts_a_new_segment():
    tok = build_tiny_tokenizer(chat_template=THINK_STRIPPING)
    renderer = ChatRenderer(tok)
    conv = renderer.start("", "Find the goal.")
    conv.add_completion(encode(tok, "<think>left is a wall</think>move[up]") + [tok.eos_token_id])
    conv.add_observation("You moved up.")
    assert (conv.segment, conv.segment_breaks) == (1, 1)
    history = [{"role": "user", "content": "Find the goal."}, {"role": "assistant", "content": "move[up]"},
               {"role": "user", "content": "You moved up."}]
    assert conv.ids == canonical(tok, history)  # the new segment's prompt is the canonical render
    assert sum(conv.loss_mask) == 0
    conv.add_completion(encode(tok, "move[down]") + [tok.eos_token_id])
    conv.add_observation("You moved down.")
    assert (conv.segment, conv.segment_breaks) == (1, 1)  # no think block: the stream extends


def test_window_mode_builds_a_fresh_prompt_with_the_last_k_steps(tokenizer):
    renderer = ChatRenderer(tokenizer, mode="window", history_window=1)
    conv = renderer.start("Solve the maze.", "Task: reach G.")
    for action, observation in (("move[up]", "You moved up."), ("move[left]", "Wall.")):
        conv.add_completion(encode(tokenizer, action) + [tokenizer.eos_token_id])
        conv.add_observation(observation)
    text = renderer.decode(conv.ids)
    assert text == tokenizer.apply_chat_template(
        [{"role": "system", "content": "Solve the maze."},
         {"role": "user", "content": "Task: reach G.\n\nYou have taken 2 step(s). The last 1:\n"
                                     "[Action 2]: move[left]\nCurrent observation (step 3):\nWall."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert conv.segment == 2 and conv.segment_breaks == 0 and sum(conv.loss_mask) == 0


def test_templates_without_verbatim_content_are_refused(tokenizer):
    with pytest.raises(RenderError, match="verbatim"):
        ChatRenderer(build_tiny_tokenizer(chat_template="{% for m in messages %}{{ m.role }}{% endfor %}"))
    assert ChatRenderer(tokenizer).stop_token_ids == (tokenizer.eos_token_id,)
