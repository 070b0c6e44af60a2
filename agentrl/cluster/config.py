"""The ``cluster:`` section of a training config (light: no Ray import)."""

from __future__ import annotations

import importlib.util
import re
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentrl.errors import InfraError

RAY_MISSING = "ray is not installed: pip install 'agentrl[ray]'"


class LearnerLost(InfraError):
    """A learner rank died (:mod:`agentrl.cluster.learner`): the trainer restores its last
    checkpoint and the learner group is rebuilt from it. Here, not beside the group, so the
    trainer can catch it without importing Ray."""


class ResourceTotal(NamedTuple):
    """How much of one resource a placement reserves, and how that adds up (for error messages)."""

    need: float
    breakdown: str


class ClusterConfig(BaseModel):
    """Where rollouts run. ``address: null`` (the default) keeps everything in one process."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="null: one process, no Ray; 'local': start a Ray instance on this machine; 'auto': the Ray "
        "cluster this machine belongs to; 'HOST:PORT': the head node of an existing cluster (its GCS port).",
    )
    env_workers: int = Field(default=2, ge=1, description="Env-worker actors (each hosts many episodes).")
    episodes_per_worker: int = Field(default=32, ge=1, description="Concurrent episodes one env worker runs.")
    env_worker_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per env worker.")
    env_worker_restarts: int = Field(
        default=3, ge=0, description="How often a dead env worker is replaced by a new actor in its bundle."
    )
    samplers: int = Field(default=1, ge=1, description="Sampler actors (policy servers) behind the router.")
    sampler_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per sampler actor.")
    sampler_restarts: int = Field(
        default=3, ge=0, description="How often a dead sampler is replaced by a new actor in its bundle (loaded "
        "with the last pushed weights before it serves).",
    )
    sampler_gpus: float = Field(
        default=0.0, ge=0, description="GPUs reserved per sampler actor (model.backend vllm needs at least one)."
    )
    placement_timeout_s: float = Field(default=60.0, gt=0, description="How long to wait for the placement group.")
    learner_ranks: int = Field(
        default=1, ge=1, description="1: the learner is the trainer process; N >= 2: N learner actors in one "
        "torch.distributed group (FSDP2), each training a slice of every mini-batch.",
    )
    learner_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per learner rank (learner_ranks >= 2).")
    learner_gpus: float = Field(
        default=0.0, ge=0, description="GPUs per learner rank (learner_ranks >= 2): 1 puts each rank's shard on "
        "its own GPU and the group on NCCL; 0 keeps them on CPU with gloo.",
    )
    learner_restarts: int = Field(
        default=3, ge=0, description="How often a learner group that lost a rank is rebuilt from the last checkpoint.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in ("local", "auto") and not re.fullmatch(r"[\w.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", value):
            raise ValueError(f"{value!r} is not 'local', 'auto' or HOST:PORT")
        if importlib.util.find_spec("ray") is None:
            raise ValueError(RAY_MISSING)
        return value

    @field_validator("learner_gpus")
    @classmethod
    def _one_gpu_per_rank(cls, value: float) -> float:
        if value not in (0, 1):  # NCCL refuses two ranks on one GPU; a rank drives one device
            raise ValueError(f"{value:g}: each learner rank drives one GPU (0 or 1)")
        return value

    @model_validator(mode="after")
    def _learner_ranks_need_a_cluster(self) -> ClusterConfig:
        if self.learner_ranks > 1 and self.address is None:
            raise ValueError("learner_ranks: more than one learner rank needs a cluster (set cluster.address)")
        return self

    def resource_totals(self, kind: Literal["CPU", "GPU"]) -> ResourceTotal:
        """What the placement reserves of ``kind`` and how it adds up, role by role (the learner
        ranks only when there are several: one learner is the trainer process)."""
        if kind == "CPU":
            roles = [(self.env_workers, "env workers", self.env_worker_cpus), (self.samplers, "samplers", self.sampler_cpus)]
        else:
            roles = [(self.samplers, "samplers", self.sampler_gpus)]
        if self.learner_ranks > 1:
            roles.append((self.learner_ranks, "learner ranks", self.learner_cpus if kind == "CPU" else self.learner_gpus))
        return ResourceTotal(
            sum(n * each for n, _, each in roles), " + ".join(f"{n} {role} x {each:g}" for n, role, each in roles)
        )
