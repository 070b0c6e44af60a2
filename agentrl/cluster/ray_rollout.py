"""Rollouts on a Ray cluster: env workers and samplers as actors in one placement group.

* **Env workers** (:class:`EnvWorker`, CPU): each hosts up to ``cluster.episodes_per_worker``
  episodes at once on its own asyncio loop, with its own env instances, and plays them with the
  one turn loop (:func:`agentrl.rollout.episode.run_actor` with a
  :class:`~agentrl.rollout.episode.TokenActor`) — the same code as a single-process run.
* **Samplers** (``cluster.samplers`` :class:`~agentrl.cluster.sampler.SamplerServer` actors): the
  HF policy on CPU or vLLM on a GPU; each env worker's :class:`~agentrl.cluster.sampler.Router`
  keeps a conversation on one server and sends new ones to the least loaded (see
  :mod:`agentrl.cluster.sampler`). The control plane here (:meth:`RayRollouts.pause`,
  :meth:`~RayRollouts.resume`, :meth:`~RayRollouts.push_weights`) fans out to every server; a
  weight push pauses them all (HF servers cut the turns in flight mid-decode, vLLM servers at a
  turn boundary), loads the new version everywhere and resumes the episodes in flight (partial
  rollouts). Each token carries the version that sampled it.
* **The engine** (:class:`RayRolloutEngine`) is the ordinary :class:`RolloutEngine` — groups,
  retries, staleness, hand-over — whose single attempt (:meth:`RolloutEngine.run_attempt`) runs
  on the least-loaded live env worker instead of in this process. It returns the same
  :class:`~agentrl.types.Trajectory` and :class:`~agentrl.rollout.engine.Group` objects, so the
  batch seam and the learner do not change. Each attempt's sampling seed is fixed by (engine seed,
  episode seed, member, attempt), so a cluster rollout equals the single-process one token for token.
* **Failures.** An env worker that dies takes its in-flight attempts with it: each comes back as
  ``infra_error`` (:class:`EnvWorkerLost`) and the engine retries it (a new attempt, on a worker
  still alive); the dead worker is replaced by a new actor in its bundle (up to
  ``cluster.env_worker_restarts`` times, then it gets no more work). A sampler that dies has its requests sent
  again to another sampler (same tokens: same seed and version), counted in
  ``stats["sampler_retries"]``, and is replaced by a new actor in its bundle (up to
  ``cluster.sampler_restarts`` times), which loads the last pushed weights and version before any
  env worker sends it a request. With no env worker or no sampler left the run stops with
  :class:`ClusterError`.

Importing this module imports Ray; :mod:`agentrl.train.trainer` imports it only when
``cluster.address`` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import os
import socket
from collections.abc import Callable
from typing import Any

from agentrl.cluster.config import RAY_MISSING, ClusterConfig

try:
    import ray
    from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:  # pragma: no cover - the config validator says so first
    raise ImportError(RAY_MISSING) from None

from agentrl.cluster.sampler import RoutedPolicy, Router, SamplerServer, first_line
from agentrl.errors import InfraError
from agentrl.policy.base import SamplingParams
from agentrl.rollout.engine import GroupSpec, RolloutEngine
from agentrl.rollout.episode import EnvFactory, TokenActor, finalize, run_actor
from agentrl.types import Trajectory

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The cluster cannot run this config (no answer, too few resources, every worker gone)."""


class EnvWorkerLost(InfraError):
    """The env worker running an attempt died; the attempt is masked and retried elsewhere."""


@dataclasses.dataclass
class EpisodeJob:
    """One attempt of one episode, as shipped to an env worker."""

    env_factory: EnvFactory  # the engine's own (cloudpickled: a lambda or a class travels too)
    sampling: SamplingParams
    max_context_tokens: int | None
    args: dict[str, Any]  # run_actor's keyword arguments (seeds, task, group, deadline, strict)
    key: str  # the conversation's routing key: group, member, attempt


# ------------------------------------------------------------------------------------ actors
class EnvWorker:
    """Plays many episodes at once (an async actor) with the one turn loop."""

    def __init__(self, index: int, samplers: list, generations: list[int], renderer, max_context_tokens: int | None):
        import torch

        torch.set_num_threads(1)
        self.index = index
        self.samplers = samplers
        self.router = Router(len(samplers), generations)
        self.renderer = renderer
        self.max_context_tokens = max_context_tokens

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    async def run(self, job: EpisodeJob) -> Trajectory:
        policy = RoutedPolicy(self.samplers, self.router, job.key, self.max_context_tokens)
        actor = TokenActor(policy, self.renderer, job.sampling, job.max_context_tokens)
        try:
            trajectory = await run_actor(job.env_factory, actor, **job.args)
        finally:
            self.router.release(job.key)
        trajectory.info |= {
            "env_worker": self.index, "samplers": policy.used, "sampler_retries": policy.retries,
            "samplers_lost": list(self.router.lost),
        }
        return trajectory

    @ray.method(concurrency_group="control")  # not queued behind the episodes
    def replace_sampler(self, index: int, handle, generation: int) -> None:
        """Sampler slot ``index`` holds a new server, ready to serve."""
        self.samplers[index] = handle
        self.router.revive(index, generation)


# ------------------------------------------------------------------------------------ the driver
def _check_answers(address: str, timeout_s: float = 5.0) -> None:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(
            f"cluster.address {address}: nothing answers there ({exc.strerror or exc}); start a head node with "
            "`ray start --head` or use address: local"
        ) from None


def connect(config: ClusterConfig) -> bool:
    """Connect this process to Ray as ``config.address`` says; True when this call connected
    (and :meth:`RayRollouts.close` should disconnect), False when already connected."""
    if ray.is_initialized():
        return False
    address = config.address
    if address not in ("local", "auto"):
        _check_answers(address)
    try:
        if address == "local":  # sized so the placement fits even on a small machine (logical CPUs)
            cpus = max(os.cpu_count() or 1, math.ceil(config.resource_totals("CPU").need))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cluster.address {address}: {first_line(exc)}") from None
    return True


def place(config: ClusterConfig):
    """The placement group: one bundle per sampler, then one per env worker, spread over nodes."""
    resources = ray.cluster_resources()
    for kind in ("CPU", "GPU"):
        need, breakdown = config.resource_totals(kind)
        have = resources.get(kind, 0.0)
        if have < need:
            raise ClusterError(f"the placement needs {need:g} {kind}s ({breakdown}) but the cluster has {have:g}")
    sampler = {"CPU": config.sampler_cpus} | ({"GPU": config.sampler_gpus} if config.sampler_gpus else {})
    bundles = [sampler] * config.samplers + [{"CPU": config.env_worker_cpus}] * config.env_workers
    return placed(bundles, "SPREAD", f"the placement group {bundles}", config.placement_timeout_s)


def placed(bundles: list[dict], strategy: str, what: str, timeout_s: float):
    """A placement group of ``bundles``, ready, or a ClusterError naming ``what`` did not fit."""
    group = placement_group(bundles, strategy=strategy)
    if not group.wait(timeout_seconds=timeout_s):
        remove_placement_group(group)
        raise ClusterError(
            f"{what} could not be placed within {timeout_s:g}s "
            f"(free now: {ray.available_resources().get('CPU', 0.0):g} CPUs over {len(ray.nodes())} nodes; "
            "a bundle must fit on one node)"
        )
    return group


class RayRollouts:
    """One connection, one placement group, ``cluster.samplers`` samplers and ``cluster.env_workers``
    env workers. ``build_policy()`` makes a sampler's policy inside its actor (it travels once
    through the object store)."""

    def __init__(self, config: ClusterConfig, build_policy: Callable[[], Any], renderer, *,
                 max_context_tokens: int | None):
        self.config = config
        self._owns_connection = connect(config)
        self._group = None
        self.samplers: list = []
        self.workers: list = []
        self.sampler_generation = [0] * config.samplers  # bumped by each replacement of a slot's server
        self._restarting: dict[int, asyncio.Task] = {}  # slot -> the start of its replacement
        try:
            self._group = place(config)
            self._build = ray.put(build_policy)
            self.samplers = [self._start_sampler(i) for i in range(config.samplers)]
            self._worker_args = (renderer, max_context_tokens)
            self.workers = [self._start_worker(i) for i in range(config.env_workers)]
            self.nodes = ray.get(
                [w.node_id.remote() for w in self.workers] + [s.status.remote() for s in self.samplers],
                timeout=config.placement_timeout_s,
            )[: config.env_workers]
        except (GetTimeoutError, RayActorError) as exc:
            self.close()
            raise ClusterError(f"the cluster actors did not start: {first_line(exc)}") from None
        except BaseException:
            self.close()
            raise
        self.alive = [True] * config.env_workers
        self.load = [0] * config.env_workers
        self.restarts = [0] * config.env_workers
        self.samplers_alive = [True] * config.samplers
        self.sampler_restarts = [0] * config.samplers
        self._weights: tuple | None = None  # (object ref, version) of the last push: what a replacement loads
        self._paused = False
        self.stats = {
            "workers_lost": 0, "workers_restarted": 0, "samplers_lost": 0, "samplers_restarted": 0,
            "sampler_retries": 0,
        }

    def _bundle(self, i: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=i)

    def _start_sampler(self, i: int):
        """Sampler ``i`` in its bundle, its policy built inside the actor."""
        c = self.config
        return (
            ray.remote(SamplerServer)
            .options(num_cpus=c.sampler_cpus, num_gpus=c.sampler_gpus, scheduling_strategy=self._bundle(i),
                     max_restarts=0)
            .remote(i, self._build)
        )

    def _start_worker(self, i: int):
        """Env worker ``i`` in its bundle (the samplers' bundles come first)."""
        c = self.config
        return (
            ray.remote(concurrency_groups={"control": 1})(EnvWorker)
            .options(
                num_cpus=c.env_worker_cpus, scheduling_strategy=self._bundle(c.samplers + i),
                max_concurrency=c.episodes_per_worker, max_restarts=0,
            )
            .remote(i, self.samplers, self.sampler_generation, *self._worker_args)
        )

    def _worker_lost(self, i: int, handle, exc: BaseException) -> None:
        """Env worker ``i`` (``handle``) failed a call: replace it while restarts are left (once,
        whatever number of its attempts report the loss), else stop giving it work."""
        if self.workers[i] is not handle or not self.alive[i]:
            return
        self.stats["workers_lost"] += 1
        ray.kill(handle)  # an unavailable actor may still be running: no two actors play as worker i
        if self.restarts[i] < self.config.env_worker_restarts:
            self.restarts[i] += 1
            self.stats["workers_restarted"] += 1
            self.workers[i] = self._start_worker(i)
            log.warning("env worker %d is gone (%s); replaced, its episodes are retried", i, first_line(exc))
        else:
            self.alive[i] = False
            log.warning("env worker %d is gone (%s), no restart left; its episodes are retried on the others",
                        i, first_line(exc))

    @classmethod
    def for_trainer(cls, config, model, tokenizer, renderer, policy) -> RayRollouts:
        """The cluster of a :class:`~agentrl.train.config.TrainConfig` (its ``cluster`` section):
        HF samplers on CPU (each a copy of ``model``), or vLLM samplers of ``model.name`` on GPUs."""
        from agentrl.policy.factory import load_policy

        m, c = config.model, config.cluster
        if config.rollout.tree is not None:
            raise ClusterError("rollout.tree: tree rollouts do not run on a cluster yet (set cluster.address: null)")
        if m.backend == "hf" and next(model.parameters()).device.type != "cpu":
            raise ClusterError(
                "model.device: HF samplers run on CPU (set model.device: cpu, or model.backend: vllm with "
                "cluster.sampler_gpus: 1)"
            )
        if m.backend == "vllm" and c.sampler_gpus <= 0:
            raise ClusterError("model.backend vllm: each vLLM sampler needs a GPU (set cluster.sampler_gpus: 1)")
        build = functools.partial(
            load_policy, m.backend, model if m.backend == "hf" else m.name, tokenizer=tokenizer, seed=config.seed,
            max_batch_size=m.max_batch_size, gpu_memory_utilization=m.gpu_memory_utilization,
        )
        return cls(c, build, renderer, max_context_tokens=policy.max_context_tokens)

    def engine(self, local: RolloutEngine) -> RayRolloutEngine:
        """``local``'s engine (same env factory, policy, renderer and config) with its episodes on
        the env workers."""
        return RayRolloutEngine(self, local)

    # ------------------------------------------------------------------ control plane
    async def _fan_out(self, method: str, *args) -> list:
        """``method(*args)`` on every live sampler at once; one that is gone is replaced (or marked dead)."""
        live = [(i, self.sampler_generation[i]) for i, up in enumerate(self.samplers_alive) if up]
        results = await asyncio.gather(
            *(getattr(self.samplers[i], method).remote(*args) for i, _ in live), return_exceptions=True
        )
        out = []
        for (i, generation), result in zip(live, results):
            if isinstance(result, RayActorError):
                await self._sampler_lost(i, generation, first_line(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                out.append(result)
        self._check_samplers()
        return out

    async def pause(self) -> None:
        """Every sampler stops decoding (HF: at the next token, the turns keep their tokens so far;
        vLLM: the turns running finish); new requests wait."""
        self._paused = True
        await self._fan_out("pause")

    async def resume(self) -> None:
        self._paused = False
        await self._fan_out("resume")

    async def push_weights(self, weights, version: int) -> None:
        """Make every sampler serve ``weights`` (a module or its state dict) as ``version``: pause
        all, load everywhere (one copy through the object store), resume all. Episodes in flight
        go on with the new weights (HF: from the token where the pause cut them; vLLM: from their
        next turn)."""
        state = weights.state_dict() if hasattr(weights, "state_dict") else weights
        ref = ray.put({name: tensor.detach().cpu() for name, tensor in state.items()})
        self._weights = (ref, version)  # kept (one copy in the object store) for a replacement sampler
        await self.pause()
        try:
            await self._fan_out("load_weights", ref, version)
        finally:
            await self.resume()

    async def sampler_status(self) -> list[dict]:
        """Each live sampler's version, gate and queue."""
        return await self._fan_out("status")

    def metrics(self) -> dict[str, float]:
        """The run's failure counters so far, for the trainer's metrics log."""
        s = self.stats
        return {
            "rollout/sampler_retries": float(s["sampler_retries"]),
            "rollout/sampler_restarts": float(s["samplers_restarted"]),
            "rollout/env_worker_restarts": float(s["workers_restarted"]),
        }

    async def _sampler_lost(self, index: int, generation: int, reason: str) -> None:
        """Server ``generation`` of slot ``index`` is gone: replace it while restarts are left
        (once, whoever reports it; every reporter waits for the replacement), else leave the slot dead."""
        if generation != self.sampler_generation[index]:
            return  # a server already replaced
        left = self.sampler_restarts[index] < self.config.sampler_restarts
        if self.samplers_alive[index]:
            self.samplers_alive[index] = False
            self.stats["samplers_lost"] += 1
            ray.kill(self.samplers[index])  # an unavailable actor may still be running
            log.warning("sampler %d is gone (%s); %s", index, reason,
                        "it is replaced" if left else "no restart left, the others serve its conversations")
        if left and index not in self._restarting:  # (also a replacement cancelled by an earlier run's end)
            self._restarting[index] = asyncio.ensure_future(self._restart_sampler(index))
        if index in self._restarting:
            await asyncio.wait([self._restarting[index]])

    async def _restart_sampler(self, index: int) -> None:
        """A new server in slot ``index``'s bundle: it loads the last push (and takes the gate's
        state) before the env workers' routers may send it a request."""
        try:
            while self.sampler_restarts[index] < self.config.sampler_restarts:
                self.sampler_restarts[index] += 1
                server = self._start_sampler(index)
                try:
                    await self._catch_up(server)
                except RayActorError as exc:
                    ray.kill(server)
                    log.warning("sampler %d's replacement did not start: %s", index, first_line(exc))
                    continue
                except BaseException:  # cancelled (the run is closing)
                    if ray.is_initialized():
                        ray.kill(server)
                    raise
                generation = self.sampler_generation[index] + 1
                self.samplers[index], self.sampler_generation[index] = server, generation
                self.samplers_alive[index] = True  # from here on every push reaches it
                self.stats["samplers_restarted"] += 1
                live = [w for w, up in zip(self.workers, self.alive) if up]
                await asyncio.gather(*(w.replace_sampler.remote(index, server, generation) for w in live),
                                     return_exceptions=True)  # a dead env worker is the engine's business
                log.warning("sampler %d replaced (restart %d)", index, self.sampler_restarts[index])
                return
        finally:
            self._restarting.pop(index, None)

    async def _catch_up(self, server) -> None:
        """Bring a new server to the last pushed weights and version and the gate's state; again
        if a push, a pause or a resume ran meanwhile."""
        while True:
            weights, paused = self._weights, self._paused
            if weights is not None:
                await server.load_weights.remote(*weights)
            await (server.pause if paused else server.resume).remote()
            if self._weights is weights and self._paused == paused:
                return

    def _check_samplers(self) -> None:
        if not any(self.samplers_alive) and not self._restarting:
            raise ClusterError(f"all {len(self.samplers)} samplers died")

    # ------------------------------------------------------------------ episodes
    async def run(self, job: EpisodeJob) -> Trajectory:
        """One attempt on the least-loaded live env worker; a worker's death → an infra_error attempt
        (the engine retries it) and a new actor in the dead one's place."""
        live = [i for i, up in enumerate(self.alive) if up]
        if not live:
            raise ClusterError(f"all {len(self.workers)} env workers died")
        if not any(self.samplers_alive) and self._restarting:  # an attempt now could only fail
            await asyncio.wait(list(self._restarting.values()))
        self._check_samplers()
        i = min(live, key=lambda k: self.load[k])
        self.load[i] += 1
        handle = self.workers[i]
        try:
            trajectory = await handle.run.remote(job)
        except (ActorDiedError, ActorUnavailableError) as exc:
            self._worker_lost(i, handle, exc)
            lost = EnvWorkerLost(f"env worker {i} died: {first_line(exc)}")
            args = job.args
            trajectory = Trajectory(
                task_id=args["task_id"] or "", seed=args["seed"], group_id=args["group_id"], status="infra_error",
                error=f"EnvWorkerLost: {lost}", info={"env_worker": i},
            )
            return finalize(trajectory)
        finally:
            self.load[i] -= 1
        self.stats["sampler_retries"] += trajectory.info["sampler_retries"]
        for index, generation in trajectory.info["samplers_lost"]:
            await self._sampler_lost(index, generation, f"found by env worker {i}")
        self._check_samplers()
        return trajectory

    def close(self) -> None:
        """Stop the actors, free the placement group, disconnect if :func:`connect` connected."""
        for task in self._restarting.values():
            task.cancel()  # its new server is killed by the task
        for actor in [*self.workers, *self.samplers]:
            ray.kill(actor)
        if self._group is not None:
            remove_placement_group(self._group)
        self.workers, self.samplers, self._group = [], [], None
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False


class RayRolloutEngine(RolloutEngine):
    """A :class:`RolloutEngine` whose attempts run on the cluster's env workers."""

    def __init__(self, rollouts: RayRollouts, local: RolloutEngine):
        super().__init__(local.env_factory, local.policy, local.renderer, local.config, progress=local.progress)
        self.rollouts = rollouts

    async def run_attempt(self, spec: GroupSpec, member: int, attempt: int) -> Trajectory:
        c = self.config
        job = EpisodeJob(
            self.env_factory, c.sampling, c.max_context_tokens, self.attempt_args(spec, member, attempt),
            key=f"{spec.group_id}/{member}/{attempt}",
        )
        return await self.rollouts.run(job)

    async def run_tree_group(self, spec, tree):
        raise NotImplementedError("tree rollouts do not run on a cluster yet")
