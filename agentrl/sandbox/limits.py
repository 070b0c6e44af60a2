"""Resource limits for one sandbox, shared by every backend (each applies what it can)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """Per-sandbox limits.

    ========================  =======================================  =====================================
    field                     local backend                            docker backend
    ========================  =======================================  =====================================
    ``memory_mb``             RLIMIT_AS per process; cgroup total       ``mem_limit`` (+ no swap)
                              where the cgroup tree is writable
    ``cpus``                  (not applied)                             ``nano_cpus``
    ``cpu_time_s``            RLIMIT_CPU per process                    RLIMIT_CPU per process
    ``file_size_mb``          RLIMIT_FSIZE                              RLIMIT_FSIZE
    ``pids``                  pids cgroup where writable, and           ``pids_limit``
                              RLIMIT_NPROC (its own uid under root)
    ``disk_mb``               tmpfs size of /tmp (RLIMIT_FSIZE per      tmpfs size of /work and /tmp
                              file in /work)
    ``network``               False: own network namespace, loopback    ``network_mode="none"`` unless True
                              only
    ========================  =======================================  =====================================
    """

    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(2048, ge=64)
    cpus: float = Field(1.0, gt=0)
    cpu_time_s: int | None = Field(3600, ge=1, description="CPU seconds per process (kernel lifetime)")
    file_size_mb: int = Field(512, ge=1)
    pids: int = Field(128, ge=8)
    disk_mb: int = Field(1024, ge=16)
    network: bool = False
    start_timeout_s: float = Field(60.0, gt=0, description="Boot deadline: process/container + kernel ready")
