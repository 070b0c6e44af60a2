"""OTC: Optimal Tool Calls — multiplicative tool-cost reward shaping.

    r(q, y)  = α · r_tool(m, n) · r_correct(q, y)                 m = tool calls of y
    OTC-PPO :  r_tool = cos( m·π / (2m + c) )                     (no group; n treated as 0)
    OTC-GRPO:  n = min{ m(y_k) : valid y_k of q with r_correct(y_k) > 0 }
               f(m,n) = 0 if m = n = 0;   m if n = 0;   2mn/(m+n) otherwise
               r_tool = 1 if f = n = 0;   cos(m·π/(2m + c)) if n = 0;   sin(f·π/(2n)) otherwise

r_tool peaks at 1 exactly when m = n and decays smoothly for over-calling; a wrong answer earns
0 however few tools it used (the reward is multiplicative, not additive). r_correct is the
episode outcome ``episode_reward``; m is the exact count from the env's action log, summed along
the episode (``tool_calls``). When no valid rollout of a group is correct, n is undefined and
the outcome is left as it is (it is 0 for every member anyway).

The shaper rewrites the outcome (``episode_reward``) before group normalisation; step rewards
are untouched. Masked rollouts are excluded from the minimum.

**Running minimum** (``running_min=True``): n is also the historic minimum of earlier batches
for the same question (``task_names``), kept in :attr:`OTCShaper.state` (an :class:`OTCState`
with ``state_dict``/``load_state_dict`` for checkpoints). Within one batch, every group of a
question sees the minimum over the batch's groups of that question and the history before
the batch, so the result does not depend on group order; the history then takes the new
minimum (only from groups with a correct rollout).

Parameters (``OTCConfig``): ``alpha`` 1.0, ``c`` 1.0, ``running_min`` False. Registered as
``otc_grpo`` and ``otc_ppo``.

Paper: "OTC: Optimal Tool Calls via Reinforcement Learning" (later "Acting Less is Reasoning
More!"), arXiv 2504.14870. Formulas agree across two independent re-implementations
(unverified against the PDF).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from agentrl.algos.batch import StepBatch
from agentrl.algos.registry import AlgoConfig, register_shaper
from agentrl.algos.stats import group_min


class OTCConfig(AlgoConfig):
    alpha: float = 1.0
    c: float = Field(default=1.0, gt=0.0)
    running_min: bool = False


def otc_ppo_tool_reward(m: np.ndarray, c: float) -> np.ndarray:
    """cos(m·π / (2m + c)): 1 at m = 0, decaying towards 0 as m grows."""
    m = np.asarray(m, dtype=np.float64)
    return np.cos(m * math.pi / (2.0 * m + c))


def otc_grpo_tool_reward(m: np.ndarray, n: np.ndarray, c: float) -> np.ndarray:
    """r_tool(m, n) of OTC-GRPO; ``n = inf`` (no correct rollout) gives 1 (outcome unchanged)."""
    m = np.asarray(m, dtype=np.float64)
    n = np.broadcast_to(np.asarray(n, dtype=np.float64), m.shape)
    defined = np.isfinite(n)
    n_safe = np.where(defined & (n > 0), n, 1.0)
    f = np.where(m + n_safe > 0, 2.0 * m * n_safe / np.maximum(m + n_safe, 1e-300), 0.0)
    r = np.sin(f * math.pi / (2.0 * n_safe))
    r = np.where(defined & (n == 0), otc_ppo_tool_reward(m, c), r)
    return np.where(defined, r, 1.0)


class OTCState:
    """Historic minimum tool calls per question id (OTC-GRPO's running minimum)."""

    def __init__(self) -> None:
        self.minimum: dict[str, int] = {}

    def state_dict(self) -> dict[str, int]:
        return dict(self.minimum)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.minimum = {str(k): int(v) for k, v in state.items()}


class OTCShaper:
    """Multiplies each valid episode's outcome by α·r_tool (``variant``: otc_grpo | otc_ppo)."""

    variant = "otc_grpo"

    def __init__(self, config: OTCConfig | None = None, state: OTCState | None = None):
        self.config = config or OTCConfig()
        self.state = state or OTCState()

    def tool_reward(self, batch: StepBatch) -> np.ndarray:
        """r_tool of every episode (leaf order)."""
        ep = batch.episode_rows
        m = batch.episode_tool_calls.astype(np.float64)
        if self.variant == "otc_ppo":
            return otc_ppo_tool_reward(m, self.config.c)
        correct = batch.episode_valid & (batch.episode_reward > 0)
        group = batch.group[ep]
        n = group_min(m, group, correct, batch.n_groups)[group]
        if self.config.running_min:
            n = self._with_history(batch, m, correct, n)
        return otc_grpo_tool_reward(m, n, self.config.c)

    def _with_history(
        self, batch: StepBatch, m: np.ndarray, correct: np.ndarray, n: np.ndarray
    ) -> np.ndarray:
        ep = batch.episode_rows
        task = batch.task[ep]
        names = batch.task_names or tuple(str(i) for i in range(int(batch.task.max()) + 1))
        n_tasks = len(names)
        in_batch = group_min(m, task, correct, n_tasks)
        history = np.array([self.state.minimum.get(name, np.inf) for name in names], dtype=np.float64)
        best = np.minimum(in_batch, history)
        for t in np.flatnonzero(np.isfinite(in_batch)):
            self.state.minimum[names[t]] = int(best[t])
        return np.minimum(n, best[task])

    def __call__(self, batch: StepBatch) -> StepBatch:
        factor = self.config.alpha * self.tool_reward(batch)
        reward = batch.episode_reward
        return batch.replace(episode_reward=np.where(batch.episode_valid, reward * factor, reward))


class OTCPPOShaper(OTCShaper):
    variant = "otc_ppo"


register_shaper("otc_grpo", OTCShaper, OTCConfig)
register_shaper("otc_ppo", OTCPPOShaper, OTCConfig)
