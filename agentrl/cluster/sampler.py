"""Samplers on a Ray cluster: N policy servers, a router in every env worker, one control plane.

* **Servers** (:class:`SamplerServer`, one actor each): a policy built by the one policy factory
  (:func:`agentrl.policy.factory.load_policy`) inside the actor — the in-process HF policy on CPU,
  or vLLM's engine on the actor's GPU. Each server has a gate: :meth:`SamplerServer.pause` closes
  it and waits until the requests in flight are done; requests that arrive meanwhile wait at the
  gate; :meth:`SamplerServer.resume` opens it.
* **The router** (:class:`Router`, one per env worker, no extra hop): a conversation (one
  attempt of one episode) stays on the server that served its first turn, so that server's prefix
  cache holds its history; a new conversation goes to the live server with the fewest
  conversations bound to it from this worker (ties: the lowest index). A server whose call fails
  with an actor error is marked dead and the request is sent again to another server
  (:class:`RoutedPolicy`): the same prompt, seed and weights version give the same tokens. The
  driver replaces a dead server by a new actor in its slot (a new *generation* of the slot,
  loaded with the last pushed weights first) and revives the slot in every router.
* **The control plane** (:class:`agentrl.cluster.ray_rollout.RayRollouts`: ``pause`` / ``resume`` /
  ``push_weights``) fans each call out to every live server.

**Partial rollouts.** A weight update pauses every server, loads the new version on each and
resumes them. With the in-process HF policy the pause cuts the turns being decoded *mid-decode*:
each batch stops at its next token, keeps its rows' tokens and logprobs so far, and after the
load the unfinished rows go on under the new weights with the rest of their budget, their own
seed stream and the stop strings checked over the whole turn (:mod:`agentrl.policy.hf`). So an
update waits for one decode step, not for the longest turn in flight. Each token records the
version that sampled it (``Completion.token_versions`` → ``StepRecord.token_versions``; the
step's ``policy_version`` is the oldest), and its behaviour logprob is that version's, so the
off-policy correction and the staleness counts stay exact per token. vLLM's engine decodes its
requests on its own and cannot be cut by us: a vLLM server pauses at a *turn* boundary (the
turns in flight finish with the old weights; each turn is one version). A retried request
reproduces its tokens when no update cut it (the same prompt, seed and version).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ray.exceptions import RayActorError

from agentrl.policy.base import Completion, PolicyBackendError, SamplingParams, VersionedPolicy

log = logging.getLogger(__name__)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SamplerServer:
    """One policy server (an async actor); ``build()`` makes its policy inside the actor."""

    def __init__(self, index: int, build: Callable[[], Any]):
        import torch

        torch.set_num_threads(1)  # a CPU sampler shares its node with env workers; vLLM decodes on its GPU
        self.index = index
        self.policy = build()
        self._open = asyncio.Event()
        self._open.set()
        self._in_flight = 0
        self._waiting = 0
        self._served = 0

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        self._waiting += 1
        try:
            await self._open.wait()  # closed while the control plane swaps weights
        finally:
            self._waiting -= 1
        self._in_flight += 1
        try:
            completion = await self.policy.generate(prompt_token_ids, sampling)
            self._served += 1
            return completion
        finally:
            self._in_flight -= 1

    async def pause(self) -> None:
        """Close the gate and stop the policy: returns once no decode step runs (HF: the turns in
        flight stop at their next token and wait; vLLM: they finish first). Idempotent."""
        if self._open.is_set():
            self._open.clear()
            await self.policy.pause()

    async def resume(self) -> None:
        """The paused turns go on (with the weights loaded meanwhile) and the gate opens. Idempotent."""
        if not self._open.is_set():
            self.policy.resume()
            self._open.set()

    async def load_weights(self, state: dict, version: int) -> int:
        """Serve ``state`` as ``version`` (the control plane pauses this server first)."""
        return await self.policy.sync_weights(state, version)

    def status(self) -> dict[str, Any]:
        """Version, gate and queue of this server (for the control plane and tests)."""
        return {
            "index": self.index, "version": self.policy.policy_version, "paused": not self._open.is_set(),
            "in_flight": self._in_flight, "waiting": self._waiting, "served": self._served,
        }


class NoSamplerLeft(PolicyBackendError):
    """Every sampler this env worker can reach is dead (the driver stops the run with a ClusterError)."""


class Router:
    """Which server each conversation uses (see the module docstring); plain bookkeeping, no Ray.
    Each slot has a generation: a replacement server gets the next one, so a failure of the server
    it replaced does not mark it dead."""

    def __init__(self, servers: int, generations: list[int] | None = None):
        self.alive = [True] * servers
        self.generation = list(generations or [0] * servers)
        self.bound = [0] * servers  # conversations bound to each server
        self.affinity: dict[str, int] = {}
        self.lost: list[tuple[int, int]] = []  # (slot, generation) of each server found dead, in order

    def pick(self, key: str) -> int:
        """The server of conversation ``key`` (bound on its first request)."""
        index = self.affinity.get(key)
        if index is not None and self.alive[index]:
            return index
        live = [i for i, up in enumerate(self.alive) if up]
        if not live:
            raise NoSamplerLeft(f"no sampler left: all {len(self.alive)} samplers died")
        if index is not None:
            self.bound[index] -= 1
        index = min(live, key=lambda i: self.bound[i])
        self.affinity[key] = index
        self.bound[index] += 1
        return index

    def release(self, key: str) -> None:
        """Conversation ``key`` is over."""
        index = self.affinity.pop(key, None)
        if index is not None:
            self.bound[index] -= 1

    def mark_dead(self, index: int, generation: int) -> bool:
        """Server ``generation`` of slot ``index`` failed: True the first time it is marked (False
        for a slot already dead or already holding a newer server)."""
        if not self.alive[index] or generation != self.generation[index]:
            return False
        self.alive[index] = False
        self.lost.append((index, generation))
        return True

    def revive(self, index: int, generation: int) -> None:
        """Slot ``index`` holds a new server (``generation``)."""
        self.generation[index] = generation  # before alive: a request that sees the slot alive sees this
        self.alive[index] = True


class RoutedPolicy(VersionedPolicy):
    """The :class:`~agentrl.policy.base.Policy` one conversation samples with: each request goes
    to the conversation's server; a dead server's request is sent again to another one."""

    def __init__(self, servers: list, router: Router, key: str, max_context_tokens: int | None):
        self.servers, self.router, self.key = servers, router, key  # servers: the env worker's list, kept current
        self._max_context = max_context_tokens
        self.used: list[int] = []  # the server of each turn
        self.retries = 0

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        while True:
            index = self.router.pick(self.key)
            server, generation = self.servers[index], self.router.generation[index]
            try:
                completion = await server.generate.remote(prompt_token_ids, sampling)
            except RayActorError as exc:
                if self.router.mark_dead(index, generation):
                    log.warning("sampler %d is gone (%s); its requests go to the others", index, first_line(exc))
                self.retries += 1
                continue
            self._version = completion.policy_version
            self.used.append(index)
            return completion
