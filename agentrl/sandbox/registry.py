"""Sandbox backends by name: the one lookup every config, CLI option and pool goes through.

Built in: ``local`` (:class:`~agentrl.sandbox.local.LocalSandbox`) and ``docker``
(:class:`~agentrl.sandbox.docker.DockerSandbox`). A third-party package adds one by declaring an
entry point in the group ``agentrl.sandboxes`` whose value is its :class:`ServerSandbox` subclass::

    [project.entry-points."agentrl.sandboxes"]
    firecracker = "my_pkg.sandbox:FirecrackerSandbox"

or, at run time, :func:`register_backend`. Classes are imported only when a backend is used.
Config fields take :data:`BackendName`: a string checked against the known names, whose error
lists them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

if TYPE_CHECKING:
    from agentrl.sandbox.base import ServerSandbox

ENTRY_POINT_GROUP = "agentrl.sandboxes"
_registry: dict[str, str | type] = {
    "local": "agentrl.sandbox.local:LocalSandbox",
    "docker": "agentrl.sandbox.docker:DockerSandbox",
}
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _registry.setdefault(ep.name, ep.value)
        _entry_points_loaded = True


def register_backend(name: str, target: str | type[ServerSandbox]) -> None:
    """Make ``name`` a backend: a ServerSandbox subclass, or ``"module:Class"`` imported on first use."""
    _load_entry_points()
    _registry[name] = target


def backend_names() -> list[str]:
    """Every known backend name: built-ins, entry points, registered ones."""
    _load_entry_points()
    return list(_registry)


def check_backend(name: str) -> str:
    """``name`` if it is a known backend, else ValueError naming the known ones."""
    if name not in backend_names():
        raise ValueError(f"unknown sandbox backend {name!r}; known: {', '.join(backend_names())}")
    return name


def sandbox_class(name: str) -> type[ServerSandbox]:
    """The sandbox class of backend ``name`` (imported now)."""
    target = _registry[check_backend(name)]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = _registry[name] = getattr(importlib.import_module(module), attr)
    return target


BackendName = Annotated[str, AfterValidator(check_backend)]
"""A config field's type for a sandbox backend name (validated against :func:`backend_names`)."""
