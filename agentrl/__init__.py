"""agentrl: train and evaluate tool-using LLM agents with reinforcement learning."""

from agentrl.env import TextEnv, list_envs, make, register
from agentrl.env.registry import load_plugins

__version__ = "0.1.0"
__all__ = ["TextEnv", "__version__", "list_envs", "make", "register"]

# Last, so a plug-in's hook can use all of the above: after `import agentrl` every env id
# (bundled or plug-in) is known to Gymnasium.
load_plugins()
