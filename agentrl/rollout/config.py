"""The rollout settings (light: no torch, no transformers), shared by the engine and the training config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentrl.policy.base import SamplingParams


class TreeConfig(BaseModel):
    """Shape and budgets of tree rollouts (Tree-GRPO's M, L, N; see :mod:`agentrl.rollout.tree`)."""

    model_config = ConfigDict(extra="forbid")

    num_trees: int = Field(default=4, ge=1, description="M: trees per task (one group).")
    rounds: int = Field(default=1, ge=0, description="L: expansion rounds per tree.")
    expansions_per_round: int = Field(default=2, ge=1, description="N: nodes expanded per round.")
    max_generated_tokens: int | None = Field(default=None, ge=1, description="Per-tree token budget.")
    max_tool_calls: int | None = Field(default=None, ge=0, description="Per-tree tool-call budget.")


class RolloutConfig(BaseModel):
    """Knobs of the engine; the defaults run."""

    model_config = ConfigDict(extra="forbid")

    group_size: int = Field(default=8, ge=1, description="Episodes per task (G).")
    max_concurrency: int = Field(default=32, ge=1, description="Episodes in flight at once.")
    episode_timeout_s: float | None = Field(
        default=600.0, gt=0, description="Deadline per attempt (None: none)."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Attempts per episode before it stays infra_error."
    )
    max_context_tokens: int | None = Field(
        default=None, ge=2, description="Context cap (None: the policy's)."
    )
    max_staleness: int | None = Field(default=None, ge=0, description="Bound for stream() (None: unbounded).")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    seed: int = Field(
        default=0, description="Seeds the episode seeds, sampling seeds and tree expansion choices."
    )
    strict: bool = Field(
        default=True,
        description="A non-infra exception (a bug) fails the run with its traceback; False: it is logged and "
        "the episode masked as infra_error.",
    )
