"""Policies: token ids in, token ids + behaviour logprobs out.

* :mod:`agentrl.policy.base` — the :class:`Policy` protocol, :class:`SamplingParams`,
  :class:`Completion` and the typed errors.
* backends — :class:`HFPolicy` (transformers in-process, dynamic batching),
  :class:`~agentrl.policy.vllm.VLLMPolicy` (vLLM's async engine; optional extra, imported lazily),
  :class:`~agentrl.policy.openai.OpenAIPolicy` (any OpenAI-compatible server over HTTP).
* :mod:`agentrl.policy.render` — chat rendering with exact token accounting.
* :mod:`agentrl.policy.tiny` — a tiny random-init model + tokenizer for CPU tests and examples.
"""

from agentrl._lazy import lazy_attributes
from agentrl.policy.base import (
    Completion,
    ContextOverflowError,
    Policy,
    PolicyBackendError,
    PolicyError,
    SamplingParams,
    TokenIdsUnavailableError,
)

# The backends and the renderer import torch / transformers: load them on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "HFPolicy": "agentrl.policy.hf",
        "ChatRenderer": "agentrl.policy.render",
        "Conversation": "agentrl.policy.render",
        "RenderError": "agentrl.policy.render",
    },
)

__all__ = [
    "ChatRenderer",
    "Completion",
    "ContextOverflowError",
    "Conversation",
    "HFPolicy",
    "Policy",
    "PolicyBackendError",
    "PolicyError",
    "RenderError",
    "SamplingParams",
    "TokenIdsUnavailableError",
]
