"""agentrl: train and evaluate tool-using LLM agents with reinforcement learning."""

from agentrl.env import TextEnv, list_envs, make, register

__version__ = "0.1.0"
__all__ = ["TextEnv", "__version__", "list_envs", "make", "register"]
