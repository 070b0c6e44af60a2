"""Typed sandbox failures, split by who caused them (the rule: :mod:`agentrl.errors`).

    SandboxError                                  base of every sandbox failure
    ├── SandboxTimeout      agent   the code ran past its limit; kernel interrupted (state_kept)
    │                               or restarted
    ├── CodeCrashed         agent   the code ended its interpreter (``os._exit``, a signal, out
    │                               of memory) or took the whole sandbox down with it
    │                               (``sandbox_lost``: the sandbox is dead, the pool replaces it)
    ├── SandboxCrashed      infra   the server/container is gone outside the code's doing:
    │                               stopped answering (host-side timeout), removed, engine gone,
    │                               or a call on a sandbox already known dead
    └── SandboxUnavailable  infra   could not start or reach a sandbox; retryable

``SandboxCrashed`` and ``SandboxUnavailable`` are :class:`~agentrl.errors.InfraError`: a rollout
that hits one is masked out of learning and eval, never scored 0. ``SandboxTimeout`` and
``CodeCrashed`` carry the partial :class:`~agentrl_sandboxes.messages.ExecResult` so an env shows
them to the agent as an observation ("timed out after 10 s", "your code crashed the
interpreter (exit code 3)"), and the episode is scored.
"""

from __future__ import annotations

import signal

from agentrl_sandboxes.messages import ExecResult

from agentrl.errors import InfraError


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


class CodeCrashed(SandboxError):
    """The code being run ended its interpreter, or the whole sandbox, during the call.

    ``result`` holds the partial output when the server survived (a fresh kernel was started);
    ``exit_code`` is the interpreter's exit status (negative: killed by that signal; None:
    unknown); ``sandbox_lost`` is True when the sandbox server itself died with it (the sandbox
    is dead: give it back to its pool, which replaces it).
    """

    def __init__(
        self,
        message: str,
        result: ExecResult | None = None,
        exit_code: int | None = None,
        sandbox_lost: bool = False,
    ):
        super().__init__(message)
        self.result = result
        self.exit_code = exit_code
        self.sandbox_lost = sandbox_lost

    def how(self) -> str:
        """``exit code 3`` / ``killed by signal SIGSEGV`` / ``its server exited`` / ``exit code unknown``."""
        code = self.exit_code
        if code is None:
            return "its server exited" if self.sandbox_lost else "exit code unknown"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


class SandboxCrashed(SandboxError, InfraError):
    """The sandbox server or container is gone, or stopped answering, outside the code's doing.

    ``server_exited`` is True when the backend confirmed the server/container exited (the client
    turns such a death during a cell or program into :class:`CodeCrashed`)."""

    retryable = True

    def __init__(self, message: str, server_exited: bool = False):
        super().__init__(message)
        self.server_exited = server_exited


class SandboxUnavailable(SandboxError, InfraError):
    """A sandbox could not be started or reached (engine down, image missing, start timed out)."""

    retryable = True
