"""The RL loop: rollout → reward shapers → estimator → PPO-clip update → weight sync.

One RL step ``k`` (1-based):

1. **Rollout.** ``rollout.groups_per_step`` groups, each one task from one initial state:
   ``rollout.group_size`` chains, or — with a ``rollout.tree`` section (required by tree-only
   estimators such as ``tree_grpo``) — ``tree.num_trees`` Tree-GRPO trees. The group specs of
   step k are a pure function of ``(seed, k)``, so a resumed run rolls out the same tasks.
2. **Advantages.** The groups become one :class:`~agentrl.rollout.batch.RolloutBatch`, built
   once: its ``steps`` go through the configured shapers and estimator
   (:class:`~agentrl.algos.Pipeline`; token entropies and action texts are computed only when
   their registry entries need them), and the advantages are laid onto its token rows —
   a shared tree prefix once, with its summed path credit. Infra-failed episodes are masked out.
3. **Update.** :class:`~agentrl.train.learner.Learner` runs the PPO epochs against the behaviour
   log-probabilities the sampler returned.
4. **Weight sync.** ``await policy.sync_weights(model)`` (the
   :class:`~agentrl.policy.base.TrainablePolicy` protocol): the in-process sampler *shares* the
   trained module, so a sync is a version bump under its ``weights_lock``; a vLLM sampler gets the
   new weights pushed.

Modes: ``sync`` runs the steps one after another. ``one_step_off`` rolls out step k+1 while the
learner trains on step k (in a worker thread), so the batch of step k+1 comes from the weights
before update k — one version stale. ``async`` never stops the rollouts: groups stream from a
:class:`~agentrl.rollout.engine.GroupStream` (admission control bounds the staleness by
``rollout.max_staleness``; a slow group is waited for when due, never dropped) and each step
trains on ``groups_per_step`` finished groups while the next ones keep rolling out; in-flight
episodes continue across a weight sync (partial rollouts), each completion recording the version
that sampled it. In both overlapping modes the in-process sampler gets its own copy of the
weights, replaced under its ``weights_lock`` at each sync, so a decode batch never mixes versions
and the recorded versions are exact. The PPO ratio is taken against the recorded behaviour
log-probabilities, optionally with an off-policy correction (``loss.off_policy``:
:mod:`agentrl.train.loss`). ``rollout.dynamic_sampling`` (DAPO) skips groups whose valid members'
rewards are all equal. The async stream's finished-but-untrained groups are saved with each
checkpoint (``rollout_buffer.json``), so a resume loses and duplicates no group.

Before RL, an optional SFT warm start (:mod:`agentrl.train.sft`) on oracle demonstrations gives a
policy that sometimes succeeds. Evaluation (fixed seeds, so curves are comparable) runs at the
start, every ``eval.every`` steps and at the end. Checkpoints every ``checkpoint.every`` steps;
``resume=True`` continues from the newest one with no step lost or done twice.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

import agentrl
from agentrl.algos import Pipeline, get_shaper
from agentrl.cluster.config import LearnerLost
from agentrl.policy.base import SamplingParams, TrainablePolicy
from agentrl.policy.factory import load_policy
from agentrl.policy.render import ChatRenderer
from agentrl.rollout import Group, GroupSpec, RolloutConfig, RolloutEngine, group_specs
from agentrl.rollout.batch import RolloutBatch, TokenRow
from agentrl.rollout.engine import GroupStream
from agentrl.rollout.episode import derive_seed
from agentrl.train.checkpoint import Checkpointer
from agentrl.train.config import TrainConfig
from agentrl.train.learner import Learner, apply_lora, cpu_threads
from agentrl.train.loss import off_policy_weights
from agentrl.train.metrics import MetricsLog, attempt_metrics, plot_learning_curves, staleness_metrics
from agentrl.train.sft import run_sft

SPEC_SEED_STRIDE = 1_000_003
EVAL_SEED = 987_654_321


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def build_model(config: TrainConfig, device: torch.device):
    """(model, tokenizer) from ``config.model``: the tiny random-init model or a Hugging Face one."""
    m = config.model
    if m.name == "tiny":
        from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer(vocab_size=m.tiny.vocab_size)
        model = build_tiny_model(
            tokenizer,
            hidden_size=m.tiny.hidden_size,
            num_layers=m.tiny.num_layers,
            num_heads=m.tiny.num_heads,
            intermediate_size=m.tiny.intermediate_size,
            initializer_range=m.tiny.initializer_range,
            seed=config.seed,
        )
    else:
        from agentrl.policy.models import load_named_model

        # a named model (smollm2-135m-instruct: its cached folder), a folder or a Hub id
        model, tokenizer = load_named_model(m.name, dtype=resolve_dtype(m.dtype, device))
    model = model.to(device=device, dtype=resolve_dtype(m.dtype, device)).eval()
    if m.lora is not None:
        model = apply_lora(model, m.lora)
    return model, tokenizer


def build_policy(config: TrainConfig, model, tokenizer) -> TrainablePolicy:
    """The sampler, from the one policy factory: in-process transformers (shares ``model``) or
    vLLM (gets the weights pushed on every sync). On a cluster the sampler actors are the
    ``model.backend`` engines: this process keeps the in-process one over ``model`` (versions, no
    second vLLM engine)."""
    m = config.model
    backend = "hf" if config.cluster.address is not None else m.backend
    policy = load_policy(
        backend, model if backend == "hf" else m.name, tokenizer=tokenizer, seed=config.seed,
        max_batch_size=m.max_batch_size, gpu_memory_utilization=m.gpu_memory_utilization,
    )
    if not isinstance(policy, TrainablePolicy):
        raise TypeError(f"model.backend {m.backend!r} gives a policy the trainer cannot update")
    return policy


class Trainer:
    """Builds every part from a :class:`TrainConfig` and runs the loop (see the module docstring)."""

    def __init__(self, config: TrainConfig, *, progress: bool = True, log=print):
        self.config = config
        self.progress = progress
        self.log = log
        self.out = Path(config.output_dir)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.device = resolve_device(config.model.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(config.model.torch_threads))
        self.model, self.tokenizer = build_model(config, self.device)
        # Overlapping modes: the in-process sampler decodes from its own copy while the learner
        # trains, so every completion comes from exactly the version it records.
        overlapped = config.mode != "sync" and config.model.backend == "hf" and config.cluster.address is None
        self.sampler_model = copy.deepcopy(self.model) if overlapped else self.model
        self.policy = build_policy(config, self.sampler_model, self.tokenizer)
        self.renderer = ChatRenderer(
            self.tokenizer, mode=config.rollout.context, history_window=config.rollout.history_window
        )
        r = config.rollout
        sampling = SamplingParams(max_tokens=r.max_tokens, temperature=r.temperature, top_p=r.top_p)
        self.engine = RolloutEngine(
            self.env_factory("train"),
            self.policy,
            self.renderer,
            RolloutConfig(
                group_size=r.group_size, max_concurrency=r.concurrency, sampling=sampling, seed=config.seed,
                strict=r.strict, max_staleness=r.max_staleness,
            ),
        )
        e = config.eval
        # Sampled evaluation ("eval/…", at eval.temperature) and, with eval.greedy, greedy ("eval/greedy_…").
        self.eval_engines = {
            prefix: RolloutEngine(
                self.env_factory(e.split),
                self.policy,
                self.renderer,
                RolloutConfig(
                    group_size=1, max_concurrency=r.concurrency, seed=EVAL_SEED, strict=r.strict,
                    sampling=sampling.model_copy(update={"temperature": temperature}),
                ),
            )
            for prefix, temperature in (("eval/", e.temperature), ("eval/greedy_", 0.0))[: 1 + e.greedy]
        }
        self.pipeline = Pipeline(
            config.algo.estimator,
            config.algo.config,
            shapers=[get_shaper(s.name, s.config) for s in config.algo.shapers],
        )
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.learner = Learner(
            self.model, config.optim, config.loss, pad_id=int(pad), seed=config.seed,
            weights_lock=self.policy.weights_lock if self.sampler_model is self.model else None,
        )
        self.checkpointer = Checkpointer(self.out / "checkpoints", keep=config.checkpoint.keep)
        self.step = 0
        self.sft_losses: list[float] = []
        self.stream: GroupStream | None = None  # mode async: the rollouts running ahead of the learner
        self._stream_state: dict | None = None  # restored from a checkpoint
        self.cluster = None
        self.learners = None  # cluster.learner_ranks >= 2: the learner group standing in for self.learner
        if config.cluster.address is not None:  # episodes on Ray env workers (agentrl/cluster/README.md)
            from agentrl.cluster.ray_rollout import RayRollouts

            self.cluster = RayRollouts.for_trainer(config, self.model, self.tokenizer, self.renderer, self.policy)
            self.engine = self.cluster.engine(self.engine)
            self.eval_engines = {k: self.cluster.engine(v) for k, v in self.eval_engines.items()}
            if config.cluster.learner_ranks > 1:
                from agentrl.cluster.learner import LearnerGroup

                try:
                    self.learners = LearnerGroup.for_trainer(config, self.learner)
                except BaseException:
                    self.cluster.close()
                    raise

    # ------------------------------------------------------------------ parts
    def env_factory(self, split: str):
        env_id, options = self.config.env.id, {**self.config.env.options, "split": split}
        agentrl.make(env_id, **options).close()  # fail now, naming the bad option, not inside a rollout
        return lambda: agentrl.make(env_id, **options)

    def _reseed_sampler(self, salt: int) -> None:
        """Make step ``salt``'s sampling reproducible (and independent of earlier steps)."""
        self.policy.reseed(self.config.seed * SPEC_SEED_STRIDE + salt)

    async def rollout(self, step: int) -> tuple[RolloutBatch, float, int]:
        """Step ``step``'s groups — trees when ``rollout.tree`` is set — as one batch, the seconds
        it took and the groups dynamic sampling skipped (further draws of specs, seeded by
        ``(seed, step, draw)``, until the batch is full)."""
        self._reseed_sampler(step)
        r = self.config.rollout

        async def draw(wanted: int, drawn: int) -> list[Group]:
            seed = self.config.seed * SPEC_SEED_STRIDE + step if drawn == 0 else derive_seed(self.config.seed, step, drawn)
            specs = group_specs(wanted, seed=seed)
            return await (self.engine.run(specs) if r.tree is None else self.engine.run_trees(specs, r.tree))

        return await self._fill(draw)

    async def take(self, stream: GroupStream) -> tuple[RolloutBatch, float, int]:
        """Mode async: ``groups_per_step`` groups from the stream (dynamic sampling skipping as in
        :meth:`rollout`), the seconds the learner waited for them and the groups skipped."""

        async def draw(wanted: int, drawn: int) -> list[Group]:
            group = await stream.take(wanted)
            if group is None:
                raise RuntimeError("the rollout stream ran out of group specs")
            return [group]

        return await self._fill(draw)

    async def _fill(self, draw: Callable[[int, int], Awaitable[list[Group]]]) -> tuple[RolloutBatch, float, int]:
        """``groups_per_step`` groups from ``draw(wanted, drawn)`` (``drawn``: the draws before this
        one this step) as one batch, the seconds it took and the groups skipped. Dynamic sampling
        skips a group without reward variance among its valid members (:func:`informative`) while
        fewer than (max_draws − 1) · groups_per_step were skipped this step."""
        r = self.config.rollout
        want = r.groups_per_step
        budget = (r.dynamic_sampling_max_draws - 1) * want if r.dynamic_sampling else 0
        start = time.perf_counter()
        kept: list[Group] = []
        skipped = 0
        for drawn in itertools.count():
            for group in await draw(want - len(kept), drawn):
                if skipped < budget and not informative(group):
                    skipped += 1
                else:
                    kept.append(group)
            if len(kept) == want:
                return self._batch(kept), time.perf_counter() - start, skipped

    def _batch(self, groups: list[Group]) -> RolloutBatch:
        return RolloutBatch.from_groups(groups, keep_text="action_texts" in self.needs)

    def open_stream(self) -> GroupStream:
        """Mode async: the endless stream of group specs — spec i is sync mode's spec ``i % B`` of
        step ``i // B + 1`` (the same tasks and seeds, in order), with group id ``g<i>`` — resumed
        from the checkpoint's rollout buffer when there is one."""
        state = self._stream_state
        per_step = self.config.rollout.groups_per_step

        @functools.lru_cache(maxsize=1)  # the stream asks for a step's specs in order: draw them once
        def step_specs(step: int) -> list[GroupSpec]:
            return group_specs(per_step, seed=self.config.seed * SPEC_SEED_STRIDE + step)

        def spec(i: int) -> GroupSpec:
            return dataclasses.replace(step_specs(i // per_step + 1)[i % per_step], group_id=f"g{i:07d}")

        first = 0 if state is None else int(state["drawn"])
        return self.engine.open_stream(map(spec, itertools.count(first)), groups_per_step=per_step, state=state)

    async def evaluate(self) -> dict[str, float]:
        """Success on fixed evaluation episodes (same seeds every time)."""
        record: dict[str, float] = {}
        for prefix, engine in self.eval_engines.items():
            self._reseed_sampler(-1)
            groups = await engine.run(self.config.eval.episodes)
            ok = [g.members[0] for g in groups if g.members[0].learnable]
            record |= {
                f"{prefix}success": float(np.mean([t.success for t in ok])) if ok else 0.0,
                f"{prefix}reward": float(np.mean([t.final_reward for t in ok])) if ok else 0.0,
                f"{prefix}turns": float(np.mean([t.num_turns for t in ok])) if ok else 0.0,
                f"{prefix}episodes": float(len(ok)),  # scored episodes: the n of the success interval
            }
        return record

    @property
    def needs(self) -> frozenset[str]:
        """What the estimator and shapers read beyond the rollout columns (their registry entries)."""
        return self.pipeline.needs

    def advantages(self, batch: RolloutBatch) -> tuple[RolloutBatch, dict[str, float]]:
        """Shapers → estimator on ``batch.steps``; the batch with its token rows carrying them."""
        if "token_entropy" in self.needs:
            # Entropy of the sampling policy per token: the weights have not changed since sampling
            # in sync mode (one version later at most in one-step-off mode).
            batch = batch.with_token_entropy(self.learner.token_entropies(batch.sample_rows()))
        adv = self.pipeline(batch.steps)
        valid = adv.token[adv.token_mask] if adv.token_mask.any() else np.zeros(1)
        stats = {
            "adv/mean": float(valid.mean()),
            "adv/abs_mean": float(np.abs(valid).mean()),
            "adv/nonzero_frac": float((valid != 0).mean()),
        }
        return batch.with_advantages(adv), stats

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """Advantages → PPO update; returns the learner's diagnostics (the weight sync follows)."""
        start = time.perf_counter()
        batch, adv_stats = self.advantages(batch)
        rows, correction = self.correct_off_policy(batch.tokens)
        stats = (self.learners or self.learner).update(rows) | correction
        seconds = time.perf_counter() - start
        out = {f"train/{k}": v for k, v in stats.items()} | adv_stats
        out["train/seconds"] = seconds
        out["train/tokens_per_s"] = stats.get("trained_tokens", 0.0) / max(seconds, 1e-9)
        return out

    def correct_off_policy(self, rows: list[TokenRow]) -> tuple[list[TokenRow], dict[str, float]]:
        """``loss.off_policy`` tis / decoupled: rows whose behaviour log-probabilities are the
        learner's pre-update ones (π_prox, one no-grad forward) and whose advantages carry the
        behaviour weight v (:func:`agentrl.train.loss.off_policy_weights`); none: ``rows`` as they are."""
        loss = self.config.loss
        if loss.off_policy == "none":
            return rows, {}
        picked, prox = self.learner.token_logprobs(rows)
        prox = torch.from_numpy(prox).double()
        behav = torch.tensor([r.old_logp[i] for r, at in zip(rows, picked) for i in at], dtype=torch.float64)
        v, stats = off_policy_weights(prox, behav, loss.off_policy, loss.tis_cap)
        out, offset = [], 0
        for row, at in zip(rows, picked):
            old, adv, neg = (np.array(x, dtype=np.float64) for x in (row.old_logp, row.advantage, row.advantage_neg or [0.0] * len(row)))
            w = v[offset : offset + at.size].numpy()
            old[at], adv[at], neg[at] = prox[offset : offset + at.size].numpy(), adv[at] * w, neg[at] * w
            offset += at.size
            out.append(dataclasses.replace(row, old_logp=old.tolist(), advantage=adv.tolist(), advantage_neg=neg.tolist()))
        return out, stats

    async def sync_weights(self, version: int | None = None) -> None:
        """Make the sampler serve the trained weights: the policy locks and loads them itself (a
        version bump when it shares the trained module, a load into the overlapping modes'
        sampler copy — cutting the turns in flight mid-decode — or into vLLM), then the cluster's
        samplers get them."""
        version = await self.policy.sync_weights(self.model, version)
        if self.cluster is not None:
            await self.cluster.push_weights(self.model, version)

    # ------------------------------------------------------------------ checkpoints
    def save(self) -> None:
        if self.learners is not None:  # the ranks' optimizer state, schedule and generator into self.learner
            self.learners.pull()
        state = {"policy_version": self.policy.policy_version, **self.learner.state_dict()}
        buffer = None if self.stream is None else self.stream.state()
        self.checkpointer.save(
            self.step, self.model, self.learner.optimizer, state, self.learner.scheduler, rollout_buffer=buffer
        )

    def restore(self) -> bool:
        path = self.checkpointer.latest()
        if path is None:
            return False
        state = self.checkpointer.load(path, self.model, self.learner.optimizer, self.learner.scheduler)
        self.step = int(state["step"])
        self.learner.load_state_dict(state)
        if self.learner.reference is not None:
            load_model(self.learner.reference, str(self.out / "reference.safetensors"))
        self._restored_version = int(state["policy_version"])
        self._stream_state = self.checkpointer.load_rollout_buffer(path)
        if self.learners is not None:  # rebuilt from the restored learner at the next update
            self.learners.reset()
        return True

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False) -> dict[str, Any]:
        return asyncio.run(self.arun(resume))

    async def arun(self, resume: bool = False) -> dict[str, Any]:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = resume and self.restore()
        if resumed:
            await self.sync_weights(self._restored_version)
        if resume and not resumed:
            self.log(f"no checkpoint under {self.checkpointer.directory}: starting from scratch")
        if not resumed and self.checkpointer.steps():
            raise RuntimeError(
                f"{self.checkpointer.directory} already holds checkpoints: pass --resume to continue that run "
                "or choose another output_dir"
            )
        (self.out / "config.yaml").write_text(yaml.safe_dump(c.model_dump(mode="json"), sort_keys=False))
        metrics = MetricsLog(self.out, tensorboard=c.tensorboard, purge_step=self.step + 1 if resumed else None)
        try:
            if resumed:
                metrics.truncate_after(self.step)
                self.log(f"resumed from step {self.step} (policy version {self.policy.policy_version})")
            else:
                metrics.truncate_after(-1)  # a run killed before its first checkpoint starts over
                await self._warm_start(metrics)
                self.save()  # step 0: the RL start, so a kill during step 1 resumes after the warm start
            for restart in range(c.cluster.learner_restarts + 1):
                try:
                    await self._loop(metrics)
                    break
                except LearnerLost as exc:  # a learner rank died: redo the steps since the last checkpoint
                    if restart == c.cluster.learner_restarts:
                        raise
                    self.restore()
                    await self.sync_weights(self._restored_version)
                    metrics.close()
                    metrics = MetricsLog(self.out, tensorboard=c.tensorboard, purge_step=self.step + 1)
                    metrics.truncate_after(self.step)
                    self.log(f"{exc}: learner group restored from step {self.step} ({restart + 1}/{c.cluster.learner_restarts})")
            records = metrics.records()
            plot = plot_learning_curves(records, self.out / "learning_curve.png", title=f"{c.algo.estimator} on {c.env.id}")
            self._export()
        finally:
            metrics.close()
            await self.policy.aclose()
            if self.learners is not None:
                self.learners.close()
            if self.cluster is not None:
                self.cluster.close()
        evals = [r for r in records if "eval/success" in r]
        return {
            "steps": self.step,
            "start_success": evals[0]["eval/success"] if evals else None,
            "final_success": evals[-1]["eval/success"] if evals else None,
            "plot": str(plot),
            "metrics": str(metrics.path),
        }

    async def _warm_start(self, metrics: MetricsLog) -> None:
        s = self.config.sft
        if s.episodes > 0:
            self.log(f"SFT warm start: {s.episodes} {s.demonstrator} episodes, {s.steps} optimizer steps")
            env_factory = self.env_factory("train")
            self.sft_losses = await asyncio.to_thread(
                run_sft,
                self.learner,
                env_factory,
                self.renderer,
                episodes=s.episodes,
                steps=s.steps,
                batch_rows=s.batch_rows,
                lr=s.lr,
                seed=self.config.seed,
                demonstrator=s.demonstrator,
                on_step=lambda i, loss: (i + 1) % 8 or self.log(f"  SFT step {i + 1}: loss {loss:.4f}"),
            )
            await self.sync_weights()
        if self.learner.reference is not None:  # the KL anchor is the policy RL starts from
            self.learner.reference.load_state_dict(self.model.state_dict())
            save_model(self.learner.reference, str(self.out / "reference.safetensors"))
        record = await self.evaluate()
        if self.sft_losses:
            record["sft/loss"] = self.sft_losses[-1]
        metrics.write(0, record)
        self.log(f"step 0: eval success {record['eval/success']:.3f}")

    async def _loop(self, metrics: MetricsLog) -> None:
        c = self.config
        first = self.step + 1
        bar = tqdm(total=c.steps, initial=self.step, desc="RL steps", unit="step", disable=not self.progress)
        pending: asyncio.Task | None = None
        if c.mode == "async":
            self.stream = self.open_stream()
        try:
            for step in range(first, c.steps + 1):
                if self.stream is not None:
                    batch, seconds, skipped = await self.take(self.stream)
                elif pending is None:
                    batch, seconds, skipped = await self.rollout(step)
                else:
                    batch, seconds, skipped = await pending
                    pending = None
                record = (
                    batch.metrics(seconds)
                    | staleness_metrics(batch.groups, self.policy.policy_version)
                    | attempt_metrics(batch.groups)
                )
                if self.cluster is not None:  # sampler retries, sampler and env-worker restarts so far
                    record |= self.cluster.metrics()
                if c.rollout.dynamic_sampling:
                    record["rollout/skipped_groups"] = float(skipped)
                if c.mode == "one_step_off" and step < c.steps:
                    pending = asyncio.create_task(self.rollout(step + 1))
                if c.mode == "sync":
                    record |= self.update(batch)
                else:  # the rollouts go on while the learner trains
                    record |= await asyncio.to_thread(self.update, batch)
                await self.sync_weights()
                record["policy_version"] = self.policy.policy_version
                self.step = step
                if (c.eval.every and step % c.eval.every == 0) or step == c.steps:
                    if pending is not None:  # evaluate the new weights, not a mix
                        await asyncio.wait([pending])
                    record |= await self.evaluate()
                metrics.write(step, record)
                if step % c.checkpoint.every == 0 or step == c.steps:
                    if pending is not None:
                        # The in-flight one-step-off rollout is not checkpointed: a resume regenerates it.
                        await asyncio.wait([pending])
                    self.save()  # mode async: with the stream's finished and in-flight groups
                bar.update(1)
                bar.set_postfix(
                    success=f"{record['rollout/success']:.2f}",
                    reward=f"{record['rollout/reward']:.2f}",
                    **({"eval": f"{record['eval/success']:.2f}"} if "eval/success" in record else {}),
                )
        finally:
            bar.close()
            if pending is not None:
                pending.cancel()
            if self.stream is not None:
                await self.stream.aclose()

    def _export(self) -> None:
        """The final policy in Hugging Face format (``final/``), loadable with ``from_pretrained``."""
        final = self.out / "final"
        self.model.save_pretrained(final, safe_serialization=True)
        self.tokenizer.save_pretrained(final)


def informative(group: Group) -> bool:
    """Whether ``group`` carries a GRPO signal: its valid (not infra-failed) episodes' rewards are
    not all equal. Masked members count neither way; fewer than two valid episodes carry none."""
    rewards = [e.final_reward for e in group.episodes() if e.status != "infra_error"]
    return len(rewards) >= 2 and max(rewards) > min(rewards)
