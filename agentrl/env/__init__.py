"""Gymnasium text environments: base class, tasks, registry, action parsers, scripted agents."""

from agentrl.env.agents import AGENTS, OracleAgent, RandomAgent, aplay_episode, make_agent
from agentrl.env.base import EnvConfig, EnvOptionError, StepOutcome, TextEnv, TextSpace
from agentrl.env.parsing import ActionError
from agentrl.env.registry import UnknownEnvError, list_envs, load_plugins, make, register
from agentrl.env.tasks import Task, TaskSet, hash_split

__all__ = [
    "AGENTS",
    "ActionError",
    "EnvConfig",
    "EnvOptionError",
    "OracleAgent",
    "RandomAgent",
    "StepOutcome",
    "Task",
    "TaskSet",
    "TextEnv",
    "TextSpace",
    "UnknownEnvError",
    "aplay_episode",
    "hash_split",
    "list_envs",
    "load_plugins",
    "make",
    "make_agent",
    "register",
]
