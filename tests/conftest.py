"""Fixtures shared by the policy and rollout tests: a real tiny transformers model on CPU."""

import signal

import pytest

from agentrl.policy import ChatRenderer, HFPolicy
from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer
from tests import ast_gc_guard

if ast_gc_guard.AFFECTED:  # a CPython bug that turns a failure into an INTERNALERROR (see the module)
    ast_gc_guard.install()

# A suite started in the background of a non-interactive shell (`bash .ci/run &`) inherits SIGINT
# ignored, and so would every command the Ctrl-C tests start: they then run to the end (measured:
# the three Ctrl-C tests failed that way). Ctrl-C means Ctrl-C in the suite and its children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def model(tokenizer):
    return build_tiny_model(tokenizer, hidden_size=64, intermediate_size=128)


@pytest.fixture
def policy(model, tokenizer):
    return HFPolicy(model, tokenizer, max_batch_size=4, max_wait_s=0.02)


@pytest.fixture
def renderer(tokenizer):
    return ChatRenderer(tokenizer)
