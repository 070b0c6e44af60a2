"""Environment registry on top of Gymnasium's, with plug-ins found through entry points.

A package makes environments available to agentrl by declaring, in its ``pyproject.toml``::

    [project.entry-points."agentrl.envs"]
    my_envs = "my_package.envs:register"

where ``register()`` calls :func:`agentrl.register` for each env. agentrl's own bundled
environments are declared exactly this way (see agentrl's pyproject.toml), so there is one
discovery path for everyone. Plug-ins load once, on the first :func:`make` / :func:`list_envs`.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from importlib.metadata import entry_points
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator

from agentrl.env.base import TextEnv

ENTRY_POINT_GROUP = "agentrl.envs"
log = logging.getLogger(__name__)

_registered: dict[str, str] = {}  # env id -> the plug-in (entry point) or module that registered it
_loaded_plugins: set[str] = set()
_plugin_errors: dict[str, str] = {}


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
    """Import every ``agentrl.envs`` entry point once; a broken plug-in is logged, not fatal."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _loaded_plugins:
            continue
        _loaded_plugins.add(key)
        try:
            hook = ep.load()
            if callable(hook):
                hook()
        except Exception as exc:  # noqa: BLE001 - one bad plug-in must not hide the others
            _plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("agentrl plug-in %r failed to load: %s", ep.name, exc)


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


def make(id: str, **kwargs: Any) -> TextEnv:
    """Build a registered environment; ``kwargs`` override its registered options.

    Unlike ``gymnasium.make`` this returns the env itself, not wrapped, so the async methods,
    ``fork()`` and the oracle stay reachable. Unknown ids raise an error listing close matches.
    """
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
