"""Typed sandbox failures.

The rollout engine keeps infrastructure failures out of learning signals: a rollout that hit
:class:`SandboxCrashed` or :class:`SandboxUnavailable` is marked invalid (masked out of group
statistics), never scored 0. :class:`SandboxTimeout` is different in kind — the *code* ran too
long — and carries the partial :class:`~agentrl_sandboxes.messages.ExecResult`, so an env may
show it to the agent as an observation ("timed out after 10 s") instead.

    SandboxError
    ├── SandboxTimeout      code ran past its limit; kernel interrupted (state_kept) or restarted
    ├── SandboxCrashed      kernel, server or container died during the call; sandbox replaced/restarted
    └── SandboxUnavailable  could not start or reach a sandbox; retryable (retryable = True)
"""

from __future__ import annotations

from agentrl_sandboxes.messages import ExecResult


class SandboxError(Exception):
    """Base of every sandbox failure. ``retryable`` says whether trying again may succeed."""

    retryable = False


class SandboxTimeout(SandboxError):
    """The cell ran past ``timeout``. ``result`` holds what it printed before; ``state_kept`` is
    True when an interrupt stopped it (variables survive), False when the kernel was restarted."""

    def __init__(self, message: str, result: ExecResult | None = None):
        super().__init__(message)
        self.result = result
        self.state_kept = result.state_kept if result is not None else False


class SandboxCrashed(SandboxError):
    """The kernel or the whole sandbox died during the call. ``result`` holds partial output when
    the server survived (kernel died, a fresh one was started)."""

    def __init__(self, message: str, result: ExecResult | None = None):
        super().__init__(message)
        self.result = result


class SandboxUnavailable(SandboxError):
    """A sandbox could not be started or reached (engine down, image missing, start timed out)."""

    retryable = True
