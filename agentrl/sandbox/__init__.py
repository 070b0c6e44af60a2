"""Sandboxes: where tool code written by a model runs.

One async protocol (:class:`Sandbox`), backends looked up by name (:mod:`.registry`: built-in
``local`` — the server under bubblewrap: own namespaces, unprivileged uid, seccomp, its own
interpreter, rlimits, cgroup — and ``docker`` — a container: no network, memory/CPU/pids limits,
read-only root, non-root user; more through the ``agentrl.sandboxes`` entry-point group) and a
warm :class:`SandboxPool`. Quick start::

    from agentrl.sandbox import create, SandboxPool, SandboxTimeout

    async with await create("local", memory_mb=1024) as sb:
        r = await sb.run_code("x = 6 * 7\\nx")
        assert r.result == "42"

    async with SandboxPool(backend="docker", size=8, max_size=32) as pool:
        async with pool.sandbox() as sb:       # acquire; reset + return on exit
            r = await sb.run_code(code, timeout=10)
"""

from __future__ import annotations

from agentrl_sandboxes.messages import Display, ExecError, ExecResult, FileInfo, Health, ProcResult

from agentrl.sandbox.base import Sandbox, ServerSandbox
from agentrl.sandbox.errors import CodeCrashed, SandboxCrashed, SandboxError, SandboxTimeout, SandboxUnavailable
from agentrl.sandbox.limits import Limits
from agentrl.sandbox.pool import SandboxPool
from agentrl.sandbox.registry import BackendName, backend_names, register_backend, sandbox_class


def new_sandbox(backend: str = "local", limits: Limits | None = None, **options) -> ServerSandbox:
    """An unstarted sandbox. ``options`` are Limits fields or backend options (``image=`` for docker)."""
    fields = {k: options.pop(k) for k in list(options) if k in Limits.model_fields}
    if limits is not None and fields:
        limits = limits.model_copy(update=fields)
    return sandbox_class(backend)(limits=limits or Limits(**fields), **options)


async def create(backend: str = "local", limits: Limits | None = None, **options) -> ServerSandbox:
    """Start a sandbox and wait until its kernel is ready.

    ``await create("docker", memory_mb=512, pids=64, image="agentrl-sandbox:latest")``.
    Raises :class:`SandboxUnavailable` (retryable) if it cannot start.
    """
    return await new_sandbox(backend, limits, **options).start()


__all__ = [
    "BackendName",
    "Display",
    "ExecError",
    "ExecResult",
    "FileInfo",
    "Health",
    "Limits",
    "ProcResult",
    "Sandbox",
    "CodeCrashed",
    "SandboxCrashed",
    "SandboxError",
    "SandboxPool",
    "SandboxTimeout",
    "SandboxUnavailable",
    "ServerSandbox",
    "backend_names",
    "create",
    "new_sandbox",
    "register_backend",
    "sandbox_class",
]
