"""Fixtures shared by the eval tests."""

import pytest

from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random-init model and its tokenizer saved as a model folder (save_pretrained format)."""
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, max_position_embeddings=2048)
    directory = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
