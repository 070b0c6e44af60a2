"""Fixtures for the sandbox tests: one warm pool per backend per module (real kernels, real Docker).

Docker tests are marked ``docker`` and skipped, with the reason, only when no engine answers or
the image has not been built (CI starts the engine and builds it: scripts/docker_setup.sh).
"""

from __future__ import annotations

import functools

import pytest
import pytest_asyncio

from agentrl.sandbox import Limits, SandboxPool
from agentrl.sandbox.errors import SandboxUnavailable

# Small limits so every hostile case hits a limit fast.
LIMITS = Limits(memory_mb=768, pids=64, disk_mb=64, file_size_mb=32, cpu_time_s=120, start_timeout_s=90)


@functools.cache
def docker_skip_reason() -> str | None:
    from agentrl.sandbox.image import DEFAULT_IMAGE, docker_client

    try:
        client = docker_client()
    except SandboxUnavailable as exc:
        return f"no Docker engine reachable: {exc}"
    try:
        client.images.get(DEFAULT_IMAGE)
    except Exception:  # noqa: BLE001 - ImageNotFound
        return f"image {DEFAULT_IMAGE} not built (run `agentrl sandbox build`)"
    return None


BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def pool(request):
    if request.param == "docker" and docker_skip_reason():
        pytest.skip(docker_skip_reason())
    async with SandboxPool(backend=request.param, size=1, max_size=1, limits=LIMITS, health_interval=0) as p:
        yield p
