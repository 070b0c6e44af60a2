"""The one root of infrastructure failures.

Who caused a failure decides how it is scored (see ``agentrl/rollout/README.md``):

- **agent-caused** — a bad action, the agent's own code crashing or hanging its kernel, a limit
  it exceeded: the env answers with an observation that says so; the episode goes on or ends as
  a failure, and it is *scored*. Envs never raise for these.
- **infrastructure** — a sandbox server, container engine, browser, retriever or policy backend
  that is gone or timed out on the host side: an :class:`InfraError`. The episode is masked out
  of every statistic and retried; it is never scored 0 or 1.

Anything else raised during an episode is a bug: by default it fails the run with its traceback
(``strict``) instead of being silently masked.
"""

from __future__ import annotations


class InfraError(Exception):
    """Base of every infrastructure failure (sandbox, browser, retriever, policy backend, remote
    env). ``retryable`` says whether trying the episode again may succeed."""

    retryable = True
