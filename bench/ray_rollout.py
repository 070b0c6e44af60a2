"""Rollout throughput on Ray: 1 env worker vs 2, on a latency-bound simulated env, in one run.

* **Env** — :class:`SlowToolEnv`, a real :class:`~agentrl.TextEnv`: ``turns`` steps per episode,
  each a tool call that waits ``step_s`` (a sandbox or a browser far away: the env, not the
  model, is the bottleneck).
* **Policy** — a tiny random-init transformers model in the sampler actor (real
  :class:`~agentrl.policy.hf.HFPolicy`, real dynamic batching); short turns (stop strings).
* **Rollouts** — :class:`~agentrl.cluster.ray_rollout.RayRolloutEngine` with ``env_workers``
  = 1 then 2, each worker running at most ``episodes_per_worker`` episodes at once, on one local
  Ray instance started here. Same episodes, seeds and engine config; only the number of env
  workers changes (so both play the same episodes, token for token). A warm-up group runs
  before each timed run (actor start-up excluded). The figure is turns per second.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes")
    parser.add_argument("--episodes-per-worker", type=int, default=8)
    parser.add_argument("--step-s", type=float, default=0.2, help="latency of one tool call")
    args = parser.parse_args()

    import os
    import sys

    import ray

    # The env workers import this file as a module to get SlowToolEnv (a class defined in __main__
    # cannot travel: cloudpickle rebuilds it from an empty class body, which TextEnv refuses).
    from ray_rollout import SlowToolEnv as Env

    from agentrl.cluster import ClusterConfig
    from agentrl.cluster.ray_rollout import RayRollouts
    from agentrl.policy import ChatRenderer, HFPolicy
    from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer
    from agentrl.rollout import RolloutConfig, RolloutEngine, group_specs

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=0)
    renderer = ChatRenderer(tokenizer)
    policy = HFPolicy(model, tokenizer)
    group_size, groups = 4, (8 if args.quick else 16)
    step_s = args.step_s
    config = RolloutConfig(group_size=group_size, max_concurrency=256, sampling=SHORT_TURNS, seed=0)
    local = RolloutEngine(lambda: Env(step_s=step_s), policy, renderer, config)

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join([here, *sys.path[1:]])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", runtime_env={"env_vars": {"PYTHONPATH": path}})
    rates = {}
    try:
        for workers in (1, 2):
            cluster = ClusterConfig(
                address="local", env_workers=workers, episodes_per_worker=args.episodes_per_worker,
                env_worker_cpus=0.5, sampler_cpus=0.5,
            )
            pool = RayRollouts(cluster, model, tokenizer, renderer, max_context_tokens=policy.max_context_tokens,
                               max_batch_size=64, seed=0)
            try:
                engine = pool.engine(local)
                asyncio.run(engine.run(group_specs(1, seed=1)))  # warm-up
                start = time.perf_counter()
                done = asyncio.run(engine.run(group_specs(groups, seed=2)))
                seconds = time.perf_counter() - start
            finally:
                pool.close()
            trajectories = [t for g in done for t in g.members]
            turns = sum(t.num_turns for t in trajectories)
            rates[workers] = turns / seconds
            print(f"{workers} env worker(s) x {args.episodes_per_worker} episodes at once: {len(trajectories)} "
                  f"episodes, {turns} turns in {seconds:.2f} s = {rates[workers]:.1f} turns/s")
    finally:
        ray.shutdown()
    print(f"2 env workers / 1 env worker: {rates[2] / rates[1]:.2f}x "
          f"(ideal 2x when the env's {step_s:g} s tool calls are the bottleneck)")


if __name__ == "__main__":
    main()
