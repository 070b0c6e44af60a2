"""Code interpreter: tool-integrated reasoning (math) and coding (HumanEval) on the sandbox layer.

* ``agentrl/CodeMath-v0`` — reasoning-gym math (gsm_symbolic, basic_arithmetic, chain_sum,
  count_primes, prime_factorization); run Python, answer with ``\\boxed{}``.
* ``agentrl/HumanEval-v0`` — HumanEval's 164 problems; run Python, submit the function, hidden
  tests run inside a sandbox.

Both take ``backend="local"`` (default) or ``backend="docker"``; see README.md.
"""

import importlib

ENV = "agentrl_envs.code_interpreter.env"


def register() -> None:
    """Entry point of the ``agentrl.envs`` group: strings only, the sandbox layer loads when made."""
    import agentrl

    agentrl.register("agentrl/CodeMath-v0", f"{ENV}:CodeMathEnv")
    agentrl.register("agentrl/HumanEval-v0", f"{ENV}:HumanEvalEnv")


_EXPORTS = dict.fromkeys(["CodeInterpreterEnv", "CodeMathEnv", "HumanEvalEnv"], ENV)


def __getattr__(name: str):  # PEP 562: the public names are imported on first use, not by register()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CodeInterpreterEnv", "CodeMathEnv", "HumanEvalEnv", "register"]
