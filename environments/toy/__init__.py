"""Toy environments: pure Python, deterministic, fast.

* ``agentrl/Maze-v0`` — a multi-turn grid maze where the same positions recur across the
  trajectories of one task, so GiGPO's anchor-state groups are non-trivial.
* ``agentrl/Calculator-v0`` — shopping questions that need a ``lookup`` tool and a
  ``calculator`` tool, so tool-call counting and tool-cost rewards are testable without sandboxes.
* ``agentrl/Bandit-v0``, ``agentrl/ContextualBandit-v0`` — one-turn door choices with a known
  optimum (1.0), for checking that training learns input-independent and input-dependent behaviour.
"""

from agentrl_envs.toy.bandit import BanditEnv
from agentrl_envs.toy.calculator import CalculatorEnv
from agentrl_envs.toy.maze import MazeEnv


def register() -> None:
    """Entry point of the ``agentrl.envs`` group."""
    import agentrl

    agentrl.register("agentrl/Maze-v0", MazeEnv)
    agentrl.register("agentrl/Calculator-v0", CalculatorEnv)
    agentrl.register("agentrl/Bandit-v0", BanditEnv, rooms=1)
    agentrl.register("agentrl/ContextualBandit-v0", BanditEnv, rooms=2)


__all__ = ["BanditEnv", "CalculatorEnv", "MazeEnv", "register"]
