"""One policy factory, used by training and evaluation: a backend by name.

==============  ==========================================================================
``hf``          transformers in-process (:class:`~agentrl.policy.hf.HFPolicy`): ``model`` is
                a loaded module (training shares it with the learner) or a model directory
``vllm``        vLLM's async engine in-process (optional extra, CUDA): ``model`` is a name/path
``openai``      an OpenAI-compatible server at token level (``base_url``; ``model`` = served name)
``openai-chat`` the same server over chat messages (no token ids: evaluation only)
==============  ==========================================================================

``hf`` and ``vllm`` give a :class:`~agentrl.policy.base.TrainablePolicy`.
"""

from __future__ import annotations

from typing import Any

POLICY_KINDS = ("hf", "vllm", "openai", "openai-chat")


class PolicyLoadError(ValueError):
    """The policy could not be built (unknown kind, missing extra, missing argument)."""


def load_policy(
    kind: str,
    model: Any,
    *,
    tokenizer: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    seed: int = 0,
    max_batch_size: int = 64,
    gpu_memory_utilization: float | None = None,
):
    """Build the ``kind`` backend for ``model`` (see the module docstring)."""
    if kind == "hf":
        from agentrl.policy.hf import HFPolicy

        if tokenizer is None:
            raise PolicyLoadError("the hf policy needs the model's tokenizer")
        if isinstance(model, str):
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model).eval()
        return HFPolicy(model, tokenizer, max_batch_size=max_batch_size, seed=seed)
    if kind == "vllm":
        try:
            from agentrl.policy.vllm import VLLMPolicy

            engine_kwargs: dict[str, Any] = {"seed": seed}
            if gpu_memory_utilization is not None:
                engine_kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            return VLLMPolicy(str(model), engine_kwargs=engine_kwargs)
        except ImportError as exc:
            raise PolicyLoadError(
                f"the vllm policy needs vLLM on a CUDA machine (pip install 'agentrl[vllm]'): {exc}"
            ) from None
    if kind in ("openai", "openai-chat"):
        from agentrl.policy.openai import OpenAIChatPolicy, OpenAIPolicy

        if not base_url:
            raise PolicyLoadError(f"the {kind} policy needs a base_url")
        cls = OpenAIChatPolicy if kind == "openai-chat" else OpenAIPolicy
        return cls(base_url, str(model), api_key=api_key)
    raise PolicyLoadError(f"unknown policy kind {kind!r}; choose one of {', '.join(POLICY_KINDS)}")
