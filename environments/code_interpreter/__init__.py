"""Code interpreter: tool-integrated reasoning (math) and coding (HumanEval) on the sandbox layer.

* ``agentrl/CodeMath-v0`` — reasoning-gym math (gsm_symbolic, basic_arithmetic, chain_sum,
  count_primes, prime_factorization); run Python, answer with ``\\boxed{}``.
* ``agentrl/HumanEval-v0`` — HumanEval's 164 problems; run Python, submit the function, hidden
  tests run inside a sandbox.

Both take ``backend="local"`` (default) or ``backend="docker"``; see README.md.
"""

from agentrl_envs.code_interpreter.env import CodeInterpreterEnv, CodeMathEnv, HumanEvalEnv


def register() -> None:
    """Entry point of the ``agentrl.envs`` group."""
    import agentrl

    agentrl.register("agentrl/CodeMath-v0", CodeMathEnv)
    agentrl.register("agentrl/HumanEval-v0", HumanEvalEnv)


__all__ = ["CodeInterpreterEnv", "CodeMathEnv", "HumanEvalEnv", "register"]
