"""Rollouts: the one turn loop and its actors (:mod:`agentrl.rollout.episode`), the async engine
(:class:`RolloutEngine`) with groups, deadlines, retries and staleness control, Tree-GRPO tree
rollouts (:mod:`agentrl.rollout.tree`) and the batch handed to the learner
(:class:`RolloutBatch`).

The configs (:mod:`agentrl.rollout.config`) import light; the rest loads on first use (the
renderer imports transformers)."""

from agentrl._lazy import lazy_attributes
from agentrl.rollout.config import RolloutConfig, TreeConfig

_EXPORTS = {
    **dict.fromkeys(("Group", "GroupSpec", "RolloutEngine", "group_specs"), "agentrl.rollout.engine"),
    **dict.fromkeys(
        (
            "Actor",
            "ActorSession",
            "ChatActor",
            "ChatPolicy",
            "ScriptedActor",
            "TokenActor",
            "play",
            "play_turns",
            "run_actor",
        ),
        "agentrl.rollout.episode",
    ),
    "TreeBuilder": "agentrl.rollout.tree",
    "RolloutBatch": "agentrl.rollout.batch",
}
__getattr__ = lazy_attributes(__name__, _EXPORTS)

__all__ = [  # noqa: RUF022 - grouped: the light configs, then the lazy exports
    "RolloutConfig",
    "TreeConfig",
    "Actor",
    "ActorSession",
    "ChatActor",
    "ChatPolicy",
    "Group",
    "GroupSpec",
    "RolloutBatch",
    "RolloutEngine",
    "ScriptedActor",
    "TokenActor",
    "TreeBuilder",
    "group_specs",
    "play",
    "play_turns",
    "run_actor",
]
