"""The learner as a torch.distributed group of Ray actors (``cluster.learner_ranks`` ≥ 2).

* **Ranks** (:class:`LearnerRank`): ``learner_ranks`` actors in their own placement group (one
  bundle each: ``learner_cpus`` CPUs and ``learner_gpus`` GPUs, strategy ``PACK``), joined in one
  process group — gloo on CPU, NCCL when the ranks have GPUs. Each holds an FSDP2 shard
  (``torch.distributed.fsdp.fully_shard`` per decoder layer, then the root) of the model, of the
  frozen KL reference and of the AdamW moments, inside an ordinary
  :class:`~agentrl.train.learner.Learner` whose :class:`DistributedRanks` splits every mini-batch.
* **An update** (:meth:`LearnerGroup.update`): the trainer puts the batch's token rows in the
  object store once; every rank reads them, draws the same shuffles, trains its token-balanced
  slice of each mini-batch with the whole mini-batch's loss normalizers (all-reduced), and the
  gradients are summed by FSDP's reduce-scatter, so the step equals the single-process step on
  the same rows (tested to 1e-5). Rank 0 then hands back the statistics and the gathered full
  weights, which the trainer loads into its own copy of the model: from there the weight push to
  the samplers, the entropies its estimators read, checkpoints and the export go on as in one
  process.
* **Checkpoints** are the single-process files: before a save the group's optimizer state
  (gathered, in torch's own per-parameter layout), schedule and shuffling generator are copied
  into the trainer's learner (:meth:`LearnerGroup.pull`), and the ranks are built from the
  trainer's learner — fresh, resumed or restored — so a run resumes with any number of ranks.
* **A rank that dies** fails the update with :class:`~agentrl.cluster.config.LearnerLost`: the
  trainer restores its last checkpoint, the group is rebuilt from it at the next update, and the
  steps since that checkpoint run again (up to ``cluster.learner_restarts`` times).
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.cluster.config import RAY_MISSING, ClusterConfig, LearnerLost

try:
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayError
    from ray.util.placement_group import remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:  # pragma: no cover - the config validator says so first
    raise ImportError(RAY_MISSING) from None

from agentrl.cluster.ray_rollout import ClusterError, placed
from agentrl.cluster.sampler import first_line
from agentrl.train.learner import Learner, Ranks
from agentrl.train.rows import TokenRow

# A rank whose peer died mid-collective fails within seconds (gloo's socket closes); this is how
# long the others' results are awaited before the group is torn down.
SETTLE_S = 10.0


class DistributedRanks(Ranks):
    """This process's place in the default torch.distributed group; modules sharded with FSDP2."""

    def __init__(self, device: torch.device):
        import torch.distributed as dist

        self.rank, self.world, self.device = dist.get_rank(), dist.get_world_size(), device

    def shard(self, module: torch.nn.Module) -> torch.nn.Module:
        from torch.distributed.fsdp import FSDPModule, fully_shard

        module.to(self.device)
        layers = set(getattr(module, "_no_split_modules", None) or ())  # a Hugging Face model's decoder layers
        for sub in list(module.modules()):
            if type(sub).__name__ in layers:
                fully_shard(sub)
        fully_shard(module)
        for sub in module.modules():
            if isinstance(sub, FSDPModule):  # each rank's loss carries the global normalizers: sum, not mean
                sub.set_gradient_divide_factor(1.0)
                sub.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
        return module

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = values.to(self.device, copy=True)
        dist.all_reduce(out)
        return out.to(values.device)

    def max(self, value: int) -> int:
        import torch.distributed as dist

        out = torch.tensor([value], device=self.device)
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return int(out.item())


def _full_options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def _trainable_names(model: torch.nn.Module) -> list[str]:
    """Parameter names in the order torch's optimizer state dict numbers them."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


class LearnerRank:
    """One rank of the learner group (a Ray actor)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world
        self.learner: Learner | None = None

    def init_method(self) -> str:
        """A TCP rendezvous on this node (called on rank 0)."""
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def setup(self, init_method: str, model, reference: dict | None, settings: dict, state: dict) -> None:
        """Join the group, shard ``model`` and the reference, load the trainer learner's ``state``."""
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        gpu = bool(ray.get_gpu_ids())
        if not gpu:  # one torch thread per CPU the bundle reserves
            torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        dist.init_process_group(
            "nccl" if gpu else "gloo", init_method=init_method, rank=self.rank, world_size=self.world,
            timeout=datetime.timedelta(minutes=30),
        )
        device = torch.device("cuda", 0) if gpu else torch.device("cpu")  # Ray shows each rank its own GPU
        learner = Learner(model, **settings, ranks=DistributedRanks(device))
        if reference is not None:
            set_model_state_dict(learner.reference, reference, options=_full_options())
        optimizer = state["optimizer"]
        if optimizer["state"]:  # a fresh optimizer (the RL start) has nothing to load
            names = _trainable_names(learner.model)
            by_name = {
                "state": {names[i]: s for i, s in optimizer["state"].items()},
                "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in optimizer["param_groups"]],
            }
            set_optimizer_state_dict(learner.model, learner.optimizer, by_name, options=_full_options())
        learner.scheduler.load_state_dict(state["scheduler"])
        learner.load_state_dict(state)
        self.learner = learner

    def update(self, rows: list[TokenRow]) -> tuple[dict[str, float], dict | None]:
        """The update on this rank's slices; rank 0 returns the statistics and the full weights."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        stats = self.learner.update(rows)
        weights = get_model_state_dict(self.learner.model, options=_full_options(cpu_offload=True))
        return (stats, weights) if self.rank == 0 else ({}, None)

    def state(self) -> dict[str, Any] | None:
        """Optimizer (torch's per-parameter layout), schedule and generator, gathered on rank 0."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        learner = self.learner
        full = get_optimizer_state_dict(learner.model, learner.optimizer, options=_full_options(cpu_offload=True))
        if self.rank != 0:
            return None
        index = {name: i for i, name in enumerate(_trainable_names(learner.model))}
        optimizer = {
            "state": {index[name]: s for name, s in full["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]],
        }
        return {"optimizer": optimizer, "scheduler": learner.scheduler.state_dict(), **learner.state_dict()}


def place_learners(config: ClusterConfig):
    """The learner ranks' placement group (one bundle per rank, packed). The cluster's CPU and GPU
    totals were checked with the rollouts' placement (:func:`~agentrl.cluster.ray_rollout.place`)."""
    bundle = {"CPU": config.learner_cpus} | ({"GPU": config.learner_gpus} if config.learner_gpus else {})
    what = f"the learner placement group ({config.learner_ranks} x {bundle})"
    return placed([bundle] * config.learner_ranks, "PACK", what, config.placement_timeout_s)


class LearnerGroup:
    """``cluster.learner_ranks`` learner actors standing in for the trainer's :class:`Learner`.

    ``learner`` (the trainer's) keeps the full weights (updated after every step), the
    configuration, and — after :meth:`pull` — the optimizer state a checkpoint saves; the ranks
    are (re)built from it at the first update after construction or :meth:`reset`.
    """

    def __init__(self, config: ClusterConfig, learner: Learner):
        self.config = config
        self.learner = learner
        self.ranks: list = []
        self._group = place_learners(config)

    @classmethod
    def for_trainer(cls, config, learner: Learner) -> LearnerGroup:
        """The group of a :class:`~agentrl.train.config.TrainConfig` (refusing what it cannot train)."""
        if config.model.lora is not None:
            raise ClusterError("model.lora: LoRA trains in the trainer process only (set cluster.learner_ranks: 1)")
        return cls(config.cluster, learner)

    def _start(self) -> None:
        c, learner = self.config, self.learner
        self.ranks = [
            ray.remote(LearnerRank)
            .options(
                num_cpus=c.learner_cpus, num_gpus=c.learner_gpus, max_restarts=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=r),
            )
            .remote(r, c.learner_ranks)
            for r in range(c.learner_ranks)
        ]
        settings = {"optim": learner.optim, "loss": learner.loss, "pad_id": learner.pad_id}
        state = {"optimizer": learner.optimizer.state_dict(), "scheduler": learner.scheduler.state_dict(),
                 **learner.state_dict()}
        reference = None if learner.reference is None else learner.reference.state_dict()
        try:
            init_method = ray.get(self.ranks[0].init_method.remote(), timeout=c.placement_timeout_s)
        except (GetTimeoutError, RayActorError) as exc:
            self.reset()
            raise ClusterError(f"the learner ranks did not start: {first_line(exc)}") from None
        model, reference, state = ray.put(learner.model), ray.put(reference), ray.put(state)
        self._call("setup", init_method, model, reference, settings, state)

    def _call(self, method: str, *args) -> list:
        """``method`` on every rank at once. A rank that died → :class:`LearnerLost` (the group is
        torn down); any other failure is re-raised as is."""
        refs = [getattr(rank, method).remote(*args) for rank in self.ranks]
        pending = list(refs)
        while pending:  # ray.get(refs) would wait for a rank stuck in a collective with a dead peer
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except RayError as exc:
                settled, _ = ray.wait(pending, num_returns=len(pending), timeout=SETTLE_S) if pending else ([], [])
                errors = [exc]
                for ref in settled:
                    try:
                        ray.get(ref)
                    except RayError as other:
                        errors.append(other)
                self.reset()
                lost = next((e for e in errors if isinstance(e, RayActorError)), None)
                if lost is not None:
                    raise LearnerLost(f"a learner rank died during {method}: {first_line(lost)}") from None
                raise
        return ray.get(refs)

    def update(self, rows: Sequence[TokenRow]) -> dict[str, float]:
        """One policy update on the ranks; the trainer's model gets the new weights."""
        if not self.ranks:
            self._start()
        stats, weights = self._call("update", ray.put(list(rows)))[0]
        with self.learner.weights_lock:
            self.learner.model.load_state_dict(weights)
        return stats

    def pull(self) -> None:
        """Copy the ranks' optimizer state, schedule and generator into the trainer's learner."""
        if not self.ranks:  # nothing trained since the ranks were (re)built from it
            return
        state = self._call("state")[0]
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.learner.scheduler.load_state_dict(state["scheduler"])
        self.learner.load_state_dict(state)

    def reset(self) -> None:
        """Stop the ranks; the next update builds new ones from the trainer's learner."""
        for rank in self.ranks:
            ray.kill(rank)
        self.ranks = []

    def close(self) -> None:
        self.reset()
        if self._group is not None:
            remove_placement_group(self._group)
            self._group = None
