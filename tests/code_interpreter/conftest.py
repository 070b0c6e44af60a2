"""Backends for the code-interpreter tests: ``local`` always, ``docker`` when an engine answers."""

import functools

import pytest


@functools.cache
def docker_skip_reason() -> str | None:
    """None when the docker backend can run here, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - no SDK, no socket, engine down: all mean "skip"
        return f"no Docker engine reachable ({type(exc).__name__})"
    try:
        from agentrl.sandbox import sandbox_class

        sandbox_class("docker")
    except Exception as exc:  # noqa: BLE001 - an import or config failure: skip with its message
        return f"docker backend unavailable: {exc}"
    return None


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request) -> str:
    if request.param == "docker" and docker_skip_reason() is not None:
        pytest.skip(docker_skip_reason())
    return request.param
