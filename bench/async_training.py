"""Fully async training vs one-step-off vs sync on long-tailed episodes, in one run.

* **Env** — :class:`LongTailEnv`, a real :class:`~agentrl.TextEnv` whose episode length is
  long-tailed: a group's task (from its seed) takes ``round(lognormal(ln median, sigma))`` turns
  (at least 1, at most ``max_turns``), each a tool call of ``step_s`` seconds. A few groups run
  many times longer than the median, as hard agent tasks do.
* **Trainer** — the real :class:`~agentrl.train.trainer.Trainer` (tiny transformers sampler,
  rollout engine, group stream, weight sync, checkpoints) with its update replaced by a
  simulated learner step: ``sleep(train_s)``. Evaluation is skipped.
* **Modes** — ``sync`` (rollout, then update), ``one_step_off`` (step k+1 rolls out during
  update k) and ``async`` (partial rollouts + ``rollout.max_staleness`` 2, ``--max-staleness``: rollouts never stop,
  in-flight episodes continue across weight syncs). Same steps, groups per step, group size and
  length distribution; each mode trains on ``steps × groups_per_step`` groups.

The figure is the wall time of the RL steps (from the step-0 checkpoint to the last step's), and
its ratio to sync's. Each mode's seconds are split into the first fill (until step 1's update
starts), the waits between a weight sync and the next update, the learner, the weight syncs and
the rest. The learner cannot start before step 1's groups are in, and then needs
``steps × train_s``: async's ceiling is sync / (its first fill + steps × train_s), printed beside
the measured figure with the seconds past it.

Figures (two runs after weight updates cut HF turns mid-decode, shared 2-core machine, load
6–10): sync 40.2 / 39.3 s; one_step_off 1.57× / 1.54×; async 2.33× / 2.21×, which is 98% / 97%
of its ceiling 2.37× / 2.29× (the learner alone: 2.51× / 2.46×). Past the ceiling async lost
0.35 / 0.61 s: 0.34 / 0.54 s waiting for groups due under the staleness bound, 0.01 s in weight
syncs; the first fill (0.93 / 1.14 s) is what separates the ceiling from the learner alone.
``--max-staleness 4``: waits 0.05 s, async 2.32× = 99% of its 2.34× ceiling (load 7).

Run: ``nice .venv/bin/python bench/async_training.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
import time

import agentrl
from agentrl.env import EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.policy import SamplingParams

# A turn ends at the first letter, digit or space the random tiny model writes.
SHORT_TURNS = SamplingParams(max_tokens=32, stop=tuple("abcdefghijklmnopqrstuvwxyz0123456789 "))


class LongTailConfig(EnvConfig):
    max_turns: int = 200
    max_invalid_actions: int | None = None
    median_turns: float = 4.0
    sigma: float = 1.0
    step_s: float = 0.05


class LongTailEnv(TextEnv):
    """Episodes of lognormal length (turns fixed by the episode seed), ``step_s`` per tool call."""

    Config = LongTailConfig
    instructions = "Call tools until the job is done."

    def build_tasks(self) -> TaskSet:
        return TaskSet.from_items([("job", {})], test_fraction=0.0)

    def _reset(self, task: Task) -> str:
        c = self.config
        draw = random.Random(self._episode_seed).lognormvariate(math.log(c.median_turns), c.sigma)
        self.turns, self.t = max(1, min(c.max_turns - 1, round(draw))), 0
        return "Start the job."

    async def _astep(self, action: str) -> StepOutcome:
        await asyncio.sleep(self.config.step_s)
        self.t += 1
        done = self.t >= self.turns
        return StepOutcome(f"tool output {self.t}", reward=float(done), terminated=done, success=done, tool_calls=1)

    def state_key(self) -> str | None:
        return None


def run(mode: str, args) -> tuple[float, int, dict, dict[str, float]]:
    """Seconds of the RL steps, turns trained on, the last step's record, and where the seconds
    went: ``fill`` (until step 1's update starts), ``wait`` (from each weight sync to the next
    update: the learner waiting for groups, and building the batch), ``learner`` (the simulated
    steps), ``sync`` (the weight syncs) and ``other`` (the rest: handing the update back, metrics)."""
    from agentrl.train.config import TrainConfig
    from agentrl.train.trainer import Trainer

    config = TrainConfig.model_validate({
        "seed": 0, "steps": args.steps, "mode": mode, "output_dir": tempfile.mkdtemp(prefix=f"async-bench-{mode}-"),
        "tensorboard": False,
        "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
                  "max_batch_size": 256},
        "env": {"id": "bench/LongTail-v0", "options": {"median_turns": args.median_turns, "sigma": args.sigma,
                                                       "step_s": args.step_s}},
        "rollout": {"groups_per_step": args.groups, "group_size": args.group_size, "concurrency": args.concurrency,
                    "max_staleness": args.max_staleness},
        "sft": {"episodes": 0}, "eval": {"every": 0, "episodes": 1, "greedy": False},
        "checkpoint": {"every": 1000},
        "loss": {"kl_coef": 0.0},
    })
    trainer = Trainer(config, progress=False, log=lambda *_: None)
    trainer.engine.config = trainer.engine.config.model_copy(update={"sampling": SHORT_TURNS})
    turns = 0

    spans: dict[str, list[tuple[float, float]]] = {"learner": [], "sync": []}

    def update(batch):  # the simulated learner step
        nonlocal turns
        turns += int(batch.steps.n_rows)
        start = time.perf_counter()
        time.sleep(args.train_s)
        spans["learner"].append((start, time.perf_counter()))
        return {}

    async def no_eval():
        return {"eval/success": 0.0}

    sync = trainer.sync_weights

    async def timed_sync(*a, **k):
        start = time.perf_counter()
        await sync(*a, **k)
        spans["sync"].append((start, time.perf_counter()))

    trainer.update = update
    trainer.evaluate = no_eval
    trainer.sync_weights = timed_sync
    last: dict = {}
    stamps: list[float] = []
    save = trainer.checkpointer.save

    def timed_save(step, *a, **k):  # the loop runs from step 0's checkpoint to the last step's
        nonlocal last
        if step:
            last = json.loads((trainer.out / "metrics.jsonl").read_text().splitlines()[-1])
        stamps.append(time.perf_counter())
        out = save(step, *a, **k)
        stamps.append(time.perf_counter())
        return out

    trainer.checkpointer.save = timed_save
    trainer.run()
    seconds = stamps[-2] - stamps[1]
    updates, syncs = spans["learner"], spans["sync"][-args.steps:]  # (a warm start would sync once before the loop)
    profile = {
        "fill": updates[0][0] - stamps[1],
        "wait": sum(u[0] - s[1] for u, s in zip(updates[1:], syncs)),
        "learner": sum(b - a for a, b in updates),
        "sync": sum(b - a for a, b in syncs),
    }
    profile["other"] = seconds - sum(profile.values())
    return seconds, turns, last, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--groups", type=int, default=8, help="groups per step")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--median-turns", type=float, default=4.0)
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma of the episode length")
    parser.add_argument("--step-s", type=float, default=0.2, help="seconds per tool call")
    parser.add_argument("--train-s", type=float, default=2.0, help="seconds per simulated learner step")
    parser.add_argument("--max-staleness", type=int, default=2, help="the async mode's bound")
    parser.add_argument("--concurrency", type=int, default=1024, help="episodes in flight at once (rollout capacity)")
    args = parser.parse_args()
    if args.quick:
        args.steps = 4
    agentrl.register("bench/LongTail-v0", LongTailEnv)

    seconds, rates, profiles = {}, {}, {}
    for mode in ("sync", "one_step_off", "async"):
        seconds[mode], turns, last, profiles[mode] = run(mode, args)
        rates[mode] = turns / seconds[mode]
        print(f"{mode:>12}: {args.steps} steps x {args.groups} groups x {args.group_size} episodes ({turns} turns) "
              f"in {seconds[mode]:6.2f} s = {seconds['sync'] / seconds[mode]:.2f}x sync's wall time, "
              f"{rates[mode]:.1f} turns/s = {rates[mode] / rates['sync']:.2f}x; last step staleness mean "
              f"{last.get('rollout/staleness_mean', 0.0):.2f} max {last.get('rollout/staleness_max', 0.0):.0f}",
              flush=True)
        print(" " * 14 + "where the seconds went: " + ", ".join(f"{k} {v:.2f} s" for k, v in profiles[mode].items()))
    # The learner cannot start before step 1's groups are in (the first fill) and then needs
    # steps x train_s: async's wall time is at least that, its speed-up over sync at most this.
    fill = profiles["async"]["fill"]
    ideal = fill + args.steps * args.train_s
    print(f"async ceiling: sync / (first fill {fill:.2f} s + learner {args.steps * args.train_s:g} s) = "
          f"{seconds['sync'] / ideal:.2f}x (learner alone: {seconds['sync'] / (args.steps * args.train_s):.2f}x); "
          f"measured {seconds['sync'] / seconds['async']:.2f}x = {ideal / seconds['async']:.0%} of the ceiling; "
          f"the {seconds['async'] - ideal:.2f} s past it: waits for groups {profiles['async']['wait']:.2f} s, "
          f"weight syncs {profiles['async']['sync']:.2f} s, other {profiles['async']['other']:.2f} s")
    print(f"speed-up over sync (wall time, turns/s): async {seconds['sync'] / seconds['async']:.2f}x / "
          f"{rates['async'] / rates['sync']:.2f}x, one_step_off {seconds['sync'] / seconds['one_step_off']:.2f}x / "
          f"{rates['one_step_off'] / rates['sync']:.2f}x (verl reports 2.35x fully async over sync); episode length "
          f"lognormal(median {args.median_turns:g} turns, sigma {args.sigma:g}) x {args.step_s:g} s per tool call, "
          f"learner step {args.train_s:g} s, async max_staleness {args.max_staleness}, "
          f"{args.concurrency} episodes in flight at most")


if __name__ == "__main__":
    main()
