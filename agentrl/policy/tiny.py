"""A tiny causal LM and tokenizer built on the spot: no download, fast on CPU.

The embedded default for tests, examples and CPU smoke runs:

* :func:`build_tiny_tokenizer` trains a byte-level BPE (any text round-trips exactly) on a small
  built-in corpus in ~0.1 s and wraps it as a ``PreTrainedTokenizerFast`` with a ChatML chat
  template (``<|im_start|>role\\n…<|im_end|>\\n``; tools are listed in the system turn).
  Training is deterministic, so two builds give the same vocabulary.
* :func:`build_tiny_model` is a randomly initialised Llama-architecture ``LlamaForCausalLM``
  (default ~0.4 M parameters) seeded for reproducibility.

The model is random: it samples gibberish until it is trained. That is what the rollout and
trainer tests need — real transformers code paths, real token ids and logprobs — at CPU speed.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EXTRA_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<answer>", "</answer>",
                "<think>", "</think>"]

# ChatML. Tool specs (OpenAI format) are listed as JSON lines in the system turn.
CHATML_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- 'Tools:\\n' }}"
    "{%- for tool in tools %}{{- tool | tojson + '\\n' }}{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message.role == 'system') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CORPUS = [
    "You are in a grid maze. '@' is you, 'G' is the goal, '#' is a wall, '.' is open floor.",
    "move[up] move[down] move[left] move[right] You moved up. You bumped into a wall moving left.",
    "#.#..\n..@.#\n.#..G\n#...#\n..#..",
    'Answer the shopping question. <tool_call>{"name": "lookup", "arguments": {"item": "apple"}}</tool_call>',
    '<tool_call>{"name": "calculator", "arguments": {"expression": "3 * 4 + 5 * 2"}}</tool_call>',
    '<tool_response>{"item": "pear", "price": 7}</tool_response> <answer>42</answer>',
    "How much do 3 apples and 5 pears cost in total? Correct. Wrong answer.",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / ( ) = , . ; : ! ?",
    "def solve(x):\n    return x * 2\nprint(solve(21))",
    "Error: Call a tool with <tool_call>...</tool_call> or answer with <answer>NUMBER</answer>.",
]


def build_tiny_tokenizer(vocab_size: int = 512, chat_template: str = CHATML_TEMPLATE) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained at run time, with ChatML special tokens and template.

    ``eos_token`` is ``<|im_end|>`` (the end of an assistant turn), ``pad_token`` is
    ``<|endoftext|>``. Byte-level means ``decode(encode(text)) == text`` for any string.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + EXTRA_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chat_template
    return fast


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 256,
    max_position_embeddings: int = 4096,
    initializer_range: float = 0.02,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM sized for ``tokenizer`` (float32, eval mode)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
