"""Rollouts on a Ray cluster: env workers and a sampler as actors in one placement group.

* **Env workers** (:class:`EnvWorker`, CPU): each hosts up to ``cluster.episodes_per_worker``
  episodes at once on its own asyncio loop, with its own env instances, and plays them with the
  one turn loop (:func:`agentrl.rollout.episode.run_actor` with a
  :class:`~agentrl.rollout.episode.TokenActor`) — the same code as a single-process run.
* **The sampler** (:class:`SamplerServer`): the in-process HF policy
  (:class:`~agentrl.policy.hf.HFPolicy`) hosted in one actor; the env workers' concurrent
  requests reach its dynamic batcher and are decoded together. The learner pushes every new
  version's weights through the object store (:meth:`RayRollouts.push_weights`); each completion
  carries the version that sampled it, so every recorded token does.
* **The engine** (:class:`RayRolloutEngine`) is the ordinary :class:`RolloutEngine` — groups,
  retries, staleness, hand-over — whose single attempt (:meth:`RolloutEngine.run_attempt`) runs
  on the least-loaded live env worker instead of in this process. It returns the same
  :class:`~agentrl.types.Trajectory` and :class:`~agentrl.rollout.engine.Group` objects, so the
  batch seam and the learner do not change. Each attempt's sampling seed is fixed by (engine seed,
  episode seed, member, attempt), so a cluster rollout equals the single-process one token for token.
* **Failures.** An env worker that dies takes its in-flight attempts with it: each comes back as
  ``infra_error`` (:class:`EnvWorkerLost`) and the engine retries it (a new attempt, on a worker
  still alive); the dead worker gets no more work. A sampler that dies fails the attempts that
  wait on it as infra errors (:class:`~agentrl.policy.base.PolicyBackendError`). With no env
  worker left the run stops with :class:`ClusterError`.

Importing this module imports Ray; :mod:`agentrl.train.trainer` imports it only when
``cluster.address`` is set.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
from typing import Any

from agentrl.cluster.config import RAY_MISSING, ClusterConfig

try:
    import ray
    from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:  # pragma: no cover - the config validator says so first
    raise ImportError(RAY_MISSING) from None

from agentrl.errors import InfraError
from agentrl.policy.base import Completion, PolicyBackendError, SamplingParams
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


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------ actors
class SamplerServer:
    """The in-process HF policy in an actor; weights arrive by :meth:`load_weights`."""

    def __init__(self, model, tokenizer, max_batch_size: int, seed: int):
        _one_thread()
        from agentrl.policy.hf import HFPolicy

        self.policy = HFPolicy(model.eval(), tokenizer, max_batch_size=max_batch_size, seed=seed)

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        return await self.policy.generate(prompt_token_ids, sampling)

    async def load_weights(self, state: dict, version: int) -> int:
        # Under the weights lock (the batcher holds it per batch): no batch mixes two versions,
        # and no token of the new weights is labelled with the old version.
        with self.policy.weights_lock:
            self.policy.model.load_state_dict(state)
            return await self.policy.sync_weights(self.policy.model, version)

    def policy_version(self) -> int:
        return self.policy.policy_version


class RemotePolicy:
    """The :class:`~agentrl.policy.base.Policy` an env worker's episodes sample with: each
    request goes to the sampler actor."""

    def __init__(self, sampler, max_context_tokens: int | None):
        self.sampler = sampler
        self._max_context = max_context_tokens
        self._version = 0

    @property
    def policy_version(self) -> int:
        return self._version

    @property
    def max_context_tokens(self) -> int | None:
        return self._max_context

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        try:
            completion = await self.sampler.generate.remote(prompt_token_ids, sampling)
        except RayActorError as exc:
            raise PolicyBackendError(f"the sampler actor is gone: {_first_line(exc)}") from None
        self._version = completion.policy_version
        return completion


class EnvWorker:
    """Plays many episodes at once (an async actor) with the one turn loop."""

    def __init__(self, index: int, sampler, renderer, max_context_tokens: int | None):
        _one_thread()
        self.index = index
        self.policy = RemotePolicy(sampler, max_context_tokens)
        self.renderer = renderer

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    async def run(self, job: EpisodeJob) -> Trajectory:
        actor = TokenActor(self.policy, self.renderer, job.sampling, job.max_context_tokens)
        trajectory = await run_actor(job.env_factory, actor, **job.args)
        trajectory.info["env_worker"] = self.index
        return trajectory


# ------------------------------------------------------------------------------------ the driver
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
            cpus = max(os.cpu_count() or 1, math.ceil(config.cpus_needed))
            ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cluster.address {address}: {_first_line(exc)}") from None
    return True


def place(config: ClusterConfig):
    """The placement group: the sampler's bundle, then one bundle per env worker, spread over nodes."""
    have = ray.cluster_resources().get("CPU", 0.0)
    if have < config.cpus_needed:
        raise ClusterError(
            f"the placement needs {config.cpus_needed:g} CPUs ({config.env_workers} env workers x "
            f"{config.env_worker_cpus:g} + sampler {config.sampler_cpus:g}) but the cluster has {have:g}"
        )
    bundles = [{"CPU": config.sampler_cpus}] + [{"CPU": config.env_worker_cpus}] * config.env_workers
    group = placement_group(bundles, strategy="SPREAD")
    if not group.wait(timeout_seconds=config.placement_timeout_s):
        remove_placement_group(group)
        raise ClusterError(
            f"the placement group {bundles} could not be placed within {config.placement_timeout_s:g}s "
            f"(free now: {ray.available_resources().get('CPU', 0.0):g} CPUs over {len(ray.nodes())} nodes; "
            "a bundle must fit on one node)"
        )
    return group


class RayRollouts:
    """One connection, one placement group, one sampler and ``cluster.env_workers`` env workers."""

    def __init__(self, config: ClusterConfig, model, tokenizer, renderer, *, max_context_tokens: int | None,
                 max_batch_size: int, seed: int):
        self.config = config
        self._owns_connection = connect(config)
        self._group = None
        self.sampler = None
        self.workers: list = []
        try:
            self._group = place(config)

            def bundle(i: int) -> PlacementGroupSchedulingStrategy:
                return PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=i)

            self.sampler = (
                ray.remote(SamplerServer)
                .options(num_cpus=config.sampler_cpus, scheduling_strategy=bundle(0), max_restarts=0)
                .remote(model, tokenizer, max_batch_size, seed)
            )
            self.workers = [
                ray.remote(EnvWorker)
                .options(
                    num_cpus=config.env_worker_cpus, scheduling_strategy=bundle(1 + i),
                    max_concurrency=config.episodes_per_worker, max_restarts=0,
                )
                .remote(i, self.sampler, renderer, max_context_tokens)
                for i in range(config.env_workers)
            ]
            self.nodes = ray.get(
                [w.node_id.remote() for w in self.workers] + [self.sampler.policy_version.remote()],
                timeout=config.placement_timeout_s,
            )[:-1]
        except (GetTimeoutError, RayActorError) as exc:
            self.close()
            raise ClusterError(f"the cluster actors did not start: {_first_line(exc)}") from None
        except BaseException:
            self.close()
            raise
        self.alive = [True] * config.env_workers
        self.load = [0] * config.env_workers
        self.stats = {"workers_lost": 0}

    @classmethod
    def for_trainer(cls, config, model, tokenizer, renderer, policy) -> RayRollouts:
        """The cluster of a :class:`~agentrl.train.config.TrainConfig` (its ``cluster`` section)."""
        if config.rollout.tree is not None:
            raise ClusterError("rollout.tree: tree rollouts do not run on a cluster yet (set cluster.address: null)")
        if config.model.backend != "hf":
            raise ClusterError(f"model.backend {config.model.backend}: the cluster sampler is the HF policy for now")
        if next(model.parameters()).device.type != "cpu":
            raise ClusterError("model.device: the cluster sampler runs on CPU for now (set model.device: cpu)")
        return cls(
            config.cluster, model, tokenizer, renderer, max_context_tokens=policy.max_context_tokens, max_batch_size=config.model.max_batch_size,
            seed=config.seed,
        )

    def engine(self, local: RolloutEngine) -> RayRolloutEngine:
        """``local``'s engine (same env factory, policy, renderer and config) with its episodes on
        the env workers."""
        return RayRolloutEngine(self, local)

    async def push_weights(self, model, version: int) -> None:
        """Make the sampler serve ``model``'s weights as ``version`` (through the object store)."""
        state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        try:
            await self.sampler.load_weights.remote(state, version)
        except RayActorError as exc:
            raise ClusterError(f"the sampler actor is gone: {_first_line(exc)}") from None

    async def run(self, job: EpisodeJob) -> Trajectory:
        """One attempt on the least-loaded live env worker; a worker's death → an infra_error attempt."""
        live = [i for i, up in enumerate(self.alive) if up]
        if not live:
            raise ClusterError(f"all {len(self.workers)} env workers died")
        i = min(live, key=lambda k: self.load[k])
        self.load[i] += 1
        try:
            return await self.workers[i].run.remote(job)
        except (ActorDiedError, ActorUnavailableError) as exc:
            if self.alive[i]:
                self.alive[i] = False
                self.stats["workers_lost"] += 1
                log.warning("env worker %d is gone (%s); its episodes are retried on the others", i, _first_line(exc))
            lost = EnvWorkerLost(f"env worker {i} died: {_first_line(exc)}")
            args = job.args
            trajectory = Trajectory(
                task_id=args["task_id"] or "", seed=args["seed"], group_id=args["group_id"], status="infra_error", error=f"EnvWorkerLost: {lost}", info={"env_worker": i},
            )
            return finalize(trajectory)
        finally:
            self.load[i] -= 1

    def close(self) -> None:
        """Stop the actors, free the placement group, disconnect if :func:`connect` connected."""
        for actor in [*self.workers, self.sampler]:
            if actor is not None:
                ray.kill(actor)
        if self._group is not None:
            remove_placement_group(self._group)
        self.workers, self.sampler, self._group = [], None, None
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
        job = EpisodeJob(self.env_factory, c.sampling, c.max_context_tokens, self.attempt_args(spec, member, attempt))
        return await self.rollouts.run(job)

    async def run_tree_group(self, spec, tree):
        raise NotImplementedError("tree rollouts do not run on a cluster yet")
