"""Environment registry on top of Gymnasium's, with plug-ins found through entry points.

A package makes environments available to agentrl by declaring, in its ``pyproject.toml``::

    [project.entry-points."agentrl.envs"]
    my_envs = "my_package.envs:register"

where ``register()`` calls :func:`agentrl.register` for each env. agentrl's own bundled
environments are declared exactly this way (see agentrl's pyproject.toml), so there is one
discovery path for everyone.

Plug-ins load once, when ``agentrl`` is imported, so every id is a plain Gymnasium id from then
on: ``import agentrl; gymnasium.make("agentrl/Maze-v0")``. Without importing agentrl, use
Gymnasium's module prefix, ``gymnasium.make("agentrl:agentrl/Maze-v0")`` (Gymnasium 1.x dropped
its own entry-point plug-ins). Registering must stay cheap: a hook registers entry-point
*strings* (``"my_package.envs.env:MyEnv"``) and imports nothing heavy, so the env's module is
imported only when the env is made. A package that re-exports its classes does so lazily
(a PEP 562 module ``__getattr__``, as the bundled packages do) and its ``__init__`` does not
import agentrl at module level: when a user's first import is such a package, its hook cannot
run while agentrl is being imported (the package is half-initialised); it is then deferred and
runs on the first :func:`make` / :func:`list_envs` instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

from agentrl.env.base import TextEnv

ENTRY_POINT_GROUP = "agentrl.envs"
log = logging.getLogger(__name__)

_registered: dict[str, str] = {}  # env id -> the plug-in (entry point) or module that registered it
_plugin_errors: dict[str, str] = {}
_scanned = False  # entry points are scanned once per process
_deferred: list[EntryPoint] = []  # hooks whose package was still being imported at scan time


class UnknownEnvError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def register(id: str, entry_point: str | type[TextEnv], **kwargs: Any) -> None:
    """Register an environment id (e.g. ``"agentrl/Maze-v0"``) with default options ``kwargs``."""
    gymnasium.register(
        id=id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True, order_enforce=False
    )
    source = entry_point if isinstance(entry_point, str) else f"{entry_point.__module__}:{entry_point.__name__}"
    _registered[id] = source


def load_plugins() -> None:
    """Run every ``agentrl.envs`` hook once; a broken plug-in is logged, not fatal.

    Runs when ``agentrl`` is imported; later calls only retry deferred hooks (the entry-point
    scan reads every installed distribution's metadata, ~10 ms, so it is done once).
    """
    global _scanned
    pending = list(_deferred)
    _deferred.clear()
    if not _scanned:
        _scanned = True
        pending += entry_points(group=ENTRY_POINT_GROUP)
    for ep in pending:
        if _half_imported(ep):
            _deferred.append(ep)
            continue
        try:
            hook = ep.load()
            if callable(hook):
                hook()
        except Exception as exc:  # noqa: BLE001 - one bad plug-in must not hide the others
            _plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("agentrl plug-in %r failed to load: %s", ep.name, exc)


def _half_imported(ep: EntryPoint) -> bool:
    """The hook's module is mid-import (it imported agentrl at its top) and lacks the hook yet."""
    module = sys.modules.get(ep.module)
    initializing = module is not None and getattr(module.__spec__, "_initializing", False)
    return initializing and not hasattr(module, (ep.attr or "").split(".")[0])


def list_envs() -> list[str]:
    """Ids of all environments registered through agentrl, sorted."""
    load_plugins()
    return sorted(_registered)


def env_sources() -> dict[str, str]:
    """Each registered id with the entry point (class or ``module:attr``) that builds it."""
    load_plugins()
    return dict(sorted(_registered.items()))


def plugin_errors() -> dict[str, str]:
    """Plug-ins that failed to load, with the error each raised."""
    load_plugins()
    return dict(_plugin_errors)


def make(id: str, remote: str | None = None, **kwargs: Any) -> TextEnv:
    """Build a registered environment; ``kwargs`` override its registered options.

    ``remote="ws://HOST:PORT"`` connects to an ``agentrl env serve`` server of ``id`` instead
    (a :class:`~agentrl.env.remote.RemoteEnv`; ``kwargs`` are then its options, e.g. ``token``).

    Unlike ``gymnasium.make`` this returns the env itself, not wrapped, so the async methods,
    ``fork()`` and the oracle stay reachable. Unknown ids raise an error listing close matches.
    """
    if remote is not None:
        from agentrl.env.remote import RemoteEnv

        return RemoteEnv(remote, id, **kwargs)
    load_plugins()
    spec = gymnasium.registry.get(id)
    if spec is None:
        known = sorted(set(_registered) | set(gymnasium.registry))
        close = difflib.get_close_matches(id, known, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        broken = f" (plug-ins that failed to load: {', '.join(_plugin_errors)})" if _plugin_errors else ""
        raise UnknownEnvError(f"unknown environment {id!r}.{hint} Run `agentrl envs list` for all ids{broken}.")
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    options = {**spec.kwargs, **kwargs}
    env = creator(**options)
    env.spec = dataclasses.replace(spec, kwargs=options)
    return env
