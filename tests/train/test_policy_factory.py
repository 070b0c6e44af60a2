"""One policy factory for train and eval; the trainable-policy protocol the trainer relies on."""

import asyncio

import pytest

from agentrl.policy.base import TrainablePolicy
from agentrl.policy.factory import PolicyLoadError, load_policy


def test_unknown_kinds_and_missing_arguments_are_one_line_errors(model, tokenizer):
    with pytest.raises(PolicyLoadError, match="unknown policy kind 'hf2'; choose one of hf, vllm, openai"):
        load_policy("hf2", model)
    with pytest.raises(PolicyLoadError, match="needs the model's tokenizer"):
        load_policy("hf", model)
    with pytest.raises(PolicyLoadError, match="needs a base_url"):
        load_policy("openai", "served-name")


def test_the_in_process_policy_is_trainable_and_syncs_by_version(model, tokenizer):
    policy = load_policy("hf", model, tokenizer=tokenizer, seed=1)
    assert isinstance(policy, TrainablePolicy)
    assert asyncio.run(policy.sync_weights(model)) == 1 == policy.policy_version
    assert asyncio.run(policy.sync_weights(model, version=7)) == 7  # a resumed run's version
    chat = load_policy("openai-chat", "served-name", base_url="http://127.0.0.1:9")
    assert not isinstance(chat, TrainablePolicy)  # evaluation only: the trainer refuses it
