"""Sandbox backends by name: one registry, an error that lists the known names."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentrl.sandbox import (
    ServerSandbox,
    backend_names,
    new_sandbox,
    register_backend,
    registry,
    sandbox_class,
)
from agentrl.sandbox.cli import sandbox as sandbox_cli
from agentrl.sandbox.docker import DockerSandbox
from agentrl.sandbox.local import LocalSandbox


def test_builtins_and_unknown_name():
    assert sandbox_class("local") is LocalSandbox and sandbox_class("docker") is DockerSandbox
    with pytest.raises(ValueError, match="unknown sandbox backend 'nope'; known: local, docker"):
        new_sandbox("nope")
    result = CliRunner().invoke(sandbox_cli, ["check", "--backend", "nope"])
    assert result.exit_code == 2 and "known: local, docker" in result.output


def test_registered_backend_is_used_by_name(monkeypatch):
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))  # leave the real one as it was

    class Fake(ServerSandbox):
        backend = "fake-test"

    register_backend("fake-test", Fake)
    assert "fake-test" in backend_names()
    assert type(new_sandbox("fake-test", memory_mb=256)) is Fake
    assert new_sandbox("fake-test", memory_mb=256).limits.memory_mb == 256
