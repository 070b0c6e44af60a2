"""Rollout throughput on Ray, in one run: 1 / 2 / 4 env workers on a latency-bound env, and
1 vs 2 samplers on a decode-bound one.

* **Env** — :class:`SlowToolEnv`, a real :class:`~agentrl.TextEnv`: ``turns`` steps per episode,
  each a tool call that waits ``step_s`` (a sandbox or a browser far away: the env, not the
  model, is the bottleneck).
* **Policy** — a tiny random-init transformers model in each sampler actor (real
  :class:`~agentrl.policy.hf.HFPolicy`, real dynamic batching); short turns (stop strings).
* **Env workers** — :class:`~agentrl.cluster.ray_rollout.RayRolloutEngine` with ``env_workers``
  = 1, 2, 4 (one sampler), each worker running at most ``episodes_per_worker`` episodes at once,
  ``step_s`` per tool call. The figure is turns per second, as a ratio to 1 worker.
* **Samplers** — 1 vs 2 samplers behind the router with 2 env workers, on the same env with
  ``step_s = 0`` and a larger model with long turns (the decode is the bottleneck).

Same episodes, seeds and engine config in every run of a part (so they play the same episodes,
token for token); one local Ray instance started here. A warm-up group runs before each timed
run (actor start-up excluded). Figures: turns/s for the env workers, generated tokens/s for the
samplers (a decode-bound turn ends at its token budget, so episodes are one turn there).

Run: ``.venv/bin/python bench/ray_rollout.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from agentrl.env import EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.policy import SamplingParams

# Short random turns: the tiny random model ends a turn at the first of these characters.
SHORT_TURNS = SamplingParams(max_tokens=32, stop=(" ", "e", "a", "o", "t"))


class SlowToolConfig(EnvConfig):
    max_turns: int = 20
    max_invalid_actions: int | None = None
    turns: int = 4
    step_s: float = 0.2


class SlowToolEnv(TextEnv):
    """``turns`` tool steps per episode, each taking ``step_s`` seconds."""

    Config = SlowToolConfig
    instructions = "Call tools until the job is done."

    def build_tasks(self) -> TaskSet:
        return TaskSet.from_items(((f"job-{i}", {}) for i in range(100)), test_fraction=0.0)

    def _reset(self, task: Task) -> str:
        self.t = 0
        return "Start the job."

    async def _astep(self, action: str) -> StepOutcome:
        await asyncio.sleep(self.config.step_s)
        self.t += 1
        done = self.t >= self.config.turns
        return StepOutcome(f"tool output {self.t}", reward=float(done), terminated=done, success=done, tool_calls=1)

    def state_key(self) -> str | None:
        return str(self.t) if self.task is not None else None


def measure(make_pool, local, groups: int) -> tuple[int, int, float]:
    """(turns, generated tokens, seconds) of ``groups`` groups on a fresh pool (after a warm-up group)."""
    from agentrl.rollout import group_specs

    pool = make_pool()
    try:
        engine = pool.engine(local)
        asyncio.run(engine.run(group_specs(1, seed=1)))  # warm-up
        start = time.perf_counter()
        done = asyncio.run(engine.run(group_specs(groups, seed=2)))
        seconds = time.perf_counter() - start
    finally:
        pool.close()
    trajectories = [t for g in done for t in g.members]
    return sum(t.num_turns for t in trajectories), sum(t.info["generated_tokens"] for t in trajectories), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes")
    parser.add_argument("--episodes-per-worker", type=int, default=8)
    parser.add_argument("--step-s", type=float, default=0.2, help="latency of one tool call")
    args = parser.parse_args()

    import functools
    import os
    import sys

    import ray

    # The env workers import this file as a module to get SlowToolEnv (a class defined in __main__
    # cannot travel: cloudpickle rebuilds it from an empty class body, which TextEnv refuses).
    from ray_rollout import SlowToolEnv as Env

    from agentrl.cluster import ClusterConfig
    from agentrl.cluster.ray_rollout import RayRollouts
    from agentrl.policy import ChatRenderer, HFPolicy
    from agentrl.policy.factory import load_policy
    from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer
    from agentrl.rollout import RolloutConfig, RolloutEngine

    tokenizer = build_tiny_tokenizer()
    renderer = ChatRenderer(tokenizer)
    group_size, groups = 4, (8 if args.quick else 16)

    def rollouts(model, sampling: SamplingParams, step_s: float, workers: int, samplers: int):
        policy = HFPolicy(model, tokenizer)
        config = RolloutConfig(group_size=group_size, max_concurrency=256, sampling=sampling, seed=0)
        local = RolloutEngine(functools.partial(Env, step_s=step_s), policy, renderer, config)
        cluster = ClusterConfig(
            address="local", env_workers=workers, samplers=samplers, episodes_per_worker=args.episodes_per_worker,
            env_worker_cpus=0.25, sampler_cpus=0.5,
        )
        build = functools.partial(load_policy, "hf", model, tokenizer=tokenizer, max_batch_size=64)
        return local, lambda: RayRollouts(cluster, build, renderer, max_context_tokens=policy.max_context_tokens)

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join([here, *sys.path[1:]])
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning",
             runtime_env={"env_vars": {"PYTHONPATH": path}})  # "local": a new instance, never another's cluster
    try:
        small = build_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=0)
        rates = {}
        for workers in (1, 2, 4):
            local, make_pool = rollouts(small, SHORT_TURNS, args.step_s, workers, samplers=1)
            turns, _, seconds = measure(make_pool, local, groups)
            rates[workers] = turns / seconds
            print(f"{workers} env worker(s) x {args.episodes_per_worker} episodes at once, 1 sampler: {turns} turns "
                  f"in {seconds:.2f} s = {rates[workers]:.1f} turns/s ({rates[workers] / rates[1]:.2f}x)")
        print(f"env workers 2 / 1: {rates[2] / rates[1]:.2f}x, 4 / 1: {rates[4] / rates[1]:.2f}x "
              f"(ideal 2x / 4x while the env's {args.step_s:g} s tool calls are the bottleneck)")

        big = build_tiny_model(tokenizer, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=512, seed=0)
        long_turns = SamplingParams(max_tokens=24)
        sampler_rates = {}
        for samplers in (1, 2):
            local, make_pool = rollouts(big, long_turns, 0.0, 2, samplers)
            _, tokens, seconds = measure(make_pool, local, groups)
            sampler_rates[samplers] = tokens / seconds
            print(f"{samplers} sampler(s), 2 env workers, decode-bound: {tokens} tokens in {seconds:.2f} s = "
                  f"{sampler_rates[samplers]:.1f} tokens/s")
        print(f"samplers 2 / 1: {sampler_rates[2] / sampler_rates[1]:.2f}x (each sampler decodes on one thread; "
              f"at most {os.cpu_count()} cores here, shared with the env workers and the driver)")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
