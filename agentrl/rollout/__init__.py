"""Rollouts: one episode (:func:`run_episode`), the async engine (:class:`RolloutEngine`) with
groups, deadlines, retries and staleness control, and Tree-GRPO tree rollouts."""

from agentrl.rollout.engine import Group, GroupSpec, RolloutConfig, RolloutEngine, group_specs
from agentrl.rollout.episode import INFRA_ERRORS, ChatPolicy, play, play_chat, run_chat_episode, run_episode
from agentrl.rollout.tree import TreeBuilder, TreeConfig

__all__ = [
    "INFRA_ERRORS",
    "ChatPolicy",
    "Group",
    "GroupSpec",
    "RolloutConfig",
    "RolloutEngine",
    "TreeBuilder",
    "TreeConfig",
    "group_specs",
    "play",
    "play_chat",
    "run_chat_episode",
    "run_episode",
]
