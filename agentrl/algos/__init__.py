"""Advantage estimators and reward shapers for multi-turn agents (turn-, step- and tree-level).

Every estimator is a pure, vectorised function over a :class:`StepBatch` (one row per step or
tree node) that returns per-step (or per-token) advantages, with infrastructure failures kept
out of every group statistic. See ``agentrl/algos/README.md`` and each module's docstring.
"""

from agentrl.algos import (  # noqa: F401  (importing registers the estimators and shapers)
    empg,
    gigpo,
    grpo,
    grpo_s,
    gtpo_entropy,
    gtpo_turn,
    rloo,
    tree_grpo,
)
from agentrl.algos.batch import StepBatch
from agentrl.algos.pipeline import Advantages, Pipeline, expand_to_tokens
from agentrl.algos.registry import (
    ESTIMATORS,
    SHAPERS,
    AlgoConfig,
    Estimator,
    Requirements,
    get_estimator,
    get_shaper,
    register_estimator,
    register_shaper,
    requirements,
)
from agentrl.algos.shapers import otc, partial_credit, penalty, turn_reward  # noqa: F401
from agentrl.algos.tree_grpo import NodeCredit, node_credit

__all__ = [
    "ESTIMATORS",
    "SHAPERS",
    "Advantages",
    "AlgoConfig",
    "Estimator",
    "NodeCredit",
    "Pipeline",
    "Requirements",
    "StepBatch",
    "expand_to_tokens",
    "get_estimator",
    "get_shaper",
    "node_credit",
    "register_estimator",
    "register_shaper",
    "requirements",
]
