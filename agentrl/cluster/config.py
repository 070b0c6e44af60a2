"""The ``cluster:`` section of a training config (light: no Ray import)."""

from __future__ import annotations

import importlib.util
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

RAY_MISSING = "ray is not installed: pip install 'agentrl[ray]'"


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
    sampler_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved for the sampler actor.")
    placement_timeout_s: float = Field(default=60.0, gt=0, description="How long to wait for the placement group.")

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

    @property
    def cpus_needed(self) -> float:
        return self.env_workers * self.env_worker_cpus + self.sampler_cpus
