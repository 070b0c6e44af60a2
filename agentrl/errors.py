"""The one root of infrastructure failures, and the rule that decides how a failure is scored.

Who caused a failure decides how it is scored:

- **agent-caused** — a bad action (unparsable, a 5000-deep JSON tool call, text that is not valid
  Unicode), the agent's own code raising, running past its cell limit, or crashing its
  interpreter (``os._exit``, a segfault, a memory bomb, killing its own process group or the
  sandbox server): the env answers with an observation that says so; the episode goes on or
  ends as a failure, and it is *scored*. Envs never raise for these.
- **infrastructure** — a sandbox server, container engine, browser, retriever or policy backend
  that is gone or timed out on the host side: an :class:`InfraError`. The episode is masked out
  of every statistic and retried; it is never scored 0 or 1.

Anything else raised during an episode is a bug: by default it fails the run with its traceback
(``strict``) instead of being silently masked. A bare ``OSError`` is *not* infrastructure.

The sandbox rule in one line: a death that the backend can confirm (the kernel, or the sandbox
server/container, was alive when the agent's cell or program started and has exited by the
time the call returned) is the code's doing → :class:`~agentrl.sandbox.errors.CodeCrashed`, an
observation; a sandbox that stops answering without having exited (host-side timeout), is
removed, or whose engine cannot be reached → :class:`~agentrl.sandbox.errors.SandboxCrashed`,
infrastructure. A sandbox lost to the agent's code is replaced with a fresh one by the pool.

The infrastructure types::

    InfraError                                   agentrl.errors
    ├── SandboxCrashed      (also SandboxError)  agentrl.sandbox.errors — server/container gone
    │   └── BrowserCrashed, BrowserPageError, BrowserTimeout   (also BrowserError)
    ├── SandboxUnavailable  (also SandboxError)  could not start or reach a sandbox / the engine
    │   └── BrowserUnavailable                   (also BrowserError)
    ├── BrowserError        (also SandboxError)  agentrl_envs.gui.browser.chromium
    ├── RetrievalUnavailable                     agentrl_envs.search.service
    └── PolicyBackendError  (also PolicyError)   agentrl.policy.base

Not infrastructure (observations, scored): ``SandboxTimeout`` and ``CodeCrashed``
(:mod:`agentrl.sandbox.errors`), which the code-interpreter env turns into observations.
"""

from __future__ import annotations


class InfraError(Exception):
    """Base of every infrastructure failure (sandbox, browser, retriever, policy backend, remote
    env). ``retryable`` says whether trying the episode again may succeed."""

    retryable = True
