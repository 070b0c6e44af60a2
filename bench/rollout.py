"""Rollout throughput: the async engine vs a lock-step loop, and tree vs chain token efficiency.

Simulated parts, real engine:

* **Policy** — :class:`SimulatedPolicy` batches concurrent requests with agentrl's own
  :class:`~agentrl.policy.batching.DynamicBatcher`; a batch occupies the "accelerator" for
  ``fixed + per_token · (longest completion in the batch)`` seconds (decode steps run together).
  Completion lengths are drawn per request. Utilisation = busy time / wall time.
* **Env** — :class:`LatencyEnv`, a real :class:`~agentrl.TextEnv`: episodes of 3–8 turns, each
  step a tool call whose latency is heterogeneous (most fast, some slow), cheap ``afork``.
* **Lock-step baseline** (written here, as verl-agent runs it): ``num_envs`` episodes start
  together; every turn, all active episodes generate in one wave, then all step together and wait
  for the slowest; the next wave of episodes starts when the whole wave is done.
* **Async** — :class:`~agentrl.rollout.RolloutEngine` with ``max_concurrency = num_envs``.

Both use the same policy, renderer and env, so the difference is scheduling alone. Tree vs
chain: the engine's chain groups vs Tree-GRPO trees (M, L, N) — trajectories per generated token.

Run: ``.venv/bin/python bench/rollout.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from pydantic import Field

from agentrl.env import EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.policy import ChatRenderer, Completion, SamplingParams
from agentrl.policy.batching import DynamicBatcher
from agentrl.policy.tiny import build_tiny_tokenizer
from agentrl.rollout import GroupSpec, RolloutConfig, RolloutEngine, TreeConfig


class SimulatedPolicy:
    """Batched policy with a latency model (see the module docstring); tokens are random ids."""

    def __init__(self, vocab: list[int], eos: int, *, fixed_s: float, per_token_s: float, max_batch_size: int,
                 tokens: tuple[int, int] = (16, 64), seed: int = 0):
        self.vocab, self.eos, self.fixed_s, self.per_token_s = vocab, eos, fixed_s, per_token_s
        self.tokens = tokens
        self.rng = np.random.default_rng(seed)
        self.batcher = DynamicBatcher(self._run, max_batch_size=max_batch_size, max_wait_s=0.002)
        self.policy_version, self.max_context_tokens = 0, None
        self.generated = 0
        self.busy: list[tuple[float, float]] = []  # (start, end) of every batch

    def utilisation(self, start: float, end: float) -> float:
        """Fraction of [start, end] during which a batch was running."""
        covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.busy)
        return covered / (end - start)

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingParams) -> Completion:
        length = int(min(self.rng.integers(*self.tokens), sampling.max_tokens))
        return await self.batcher.submit(length)

    def _run(self, lengths: list[int]) -> list[Completion]:
        start = time.perf_counter()
        time.sleep(self.fixed_s + self.per_token_s * max(lengths))  # the accelerator is busy
        self.busy.append((start, time.perf_counter()))
        self.generated += sum(lengths)
        out = []
        for n in lengths:
            ids = [int(t) for t in self.rng.choice(self.vocab, size=n - 1)] + [self.eos]
            out.append(Completion(token_ids=ids, logprobs=[-1.0] * n, finish_reason="stop"))
        return out


class LatencyConfig(EnvConfig):
    max_turns: int = 20
    max_invalid_actions: int | None = None
    fast_s: float = Field(default=0.01)
    slow_s: float = Field(default=0.3)
    slow_fraction: float = Field(default=0.25)


class LatencyEnv(TextEnv):
    """Episodes of 3–8 tool steps; each step is fast or (with ``slow_fraction``) slow."""

    Config = LatencyConfig
    instructions = "Call tools until the task is done."

    def build_tasks(self) -> TaskSet:
        return TaskSet.from_items(((f"job-{i}", {"turns": 3 + i % 6}) for i in range(600)), test_fraction=0.0)

    def _reset(self, task: Task) -> str:
        self.t = 0
        return "Start the job."

    async def _astep(self, action: str) -> StepOutcome:
        slow = self.np_random.random() < self.config.slow_fraction
        await asyncio.sleep(self.config.slow_s if slow else self.config.fast_s)
        self.t += 1
        done = self.t >= self.task.data["turns"]
        return StepOutcome(f"tool output {self.t}", reward=float(done), terminated=done, success=done, tool_calls=1)

    def state_key(self) -> str | None:
        return str(self.t) if self.task is not None else None

    async def afork(self) -> TextEnv:  # a cheap snapshot, as a snapshot-capable env would offer
        twin = self._blank_twin()
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_loop", "_np_random")})
        twin._np_random = np.random.default_rng(self.np_random.integers(2**31))
        return twin


async def lock_step(policy, renderer: ChatRenderer, specs: list[GroupSpec], group_size: int, num_envs: int,
                    make_env) -> int:
    """verl-agent style: waves of ``num_envs`` episodes, every turn generate-all then step-all."""
    sampling = SamplingParams(max_tokens=128).with_stop_token_ids(renderer.stop_token_ids)
    episodes = [s for s in specs for _ in range(group_size)]
    done_count = 0
    for start in range(0, len(episodes), num_envs):
        wave = episodes[start : start + num_envs]
        envs = [make_env() for _ in wave]
        convs = []
        for env, spec in zip(envs, wave):
            obs, _ = await env.areset(seed=spec.seed, options={"task_id": spec.task_id} if spec.task_id else None)
            convs.append(renderer.start(env.system_prompt(), obs))
        active = list(range(len(wave)))
        while active:
            completions = await asyncio.gather(*(policy.generate(convs[i].prompt_ids(), sampling) for i in active))
            actions = [convs[i].add_completion(c.token_ids) for i, c in zip(active, completions)]
            results = await asyncio.gather(*(envs[i].astep(a) for i, a in zip(active, actions)))
            still = []
            for i, (obs, _, terminated, truncated, _) in zip(active, results):
                if terminated or truncated:
                    done_count += 1
                else:
                    convs[i].add_observation(obs)
                    still.append(i)
            active = still
    return done_count


async def async_engine(policy, renderer, specs, group_size, num_envs, make_env) -> int:
    config = RolloutConfig(group_size=group_size, max_concurrency=num_envs, sampling=SamplingParams(max_tokens=128),
                           episode_timeout_s=None, strict=True)
    groups = await RolloutEngine(make_env, policy, renderer, config).run(specs)
    return sum(1 for g in groups for t in g.members if t.status == "ok")


async def timed(name, policy, run, make_env):
    """Run one scheduler; utilisation overall and in steady state (until the last episode starts)."""
    starts = []

    def recording_env():
        starts.append(time.perf_counter())
        return make_env()

    t0 = time.perf_counter()
    episodes = await run(recording_env)
    end = time.perf_counter()
    await policy.batcher.aclose()
    wall = end - t0
    util, steady = policy.utilisation(t0, end), policy.utilisation(t0, max(starts))
    gaps = sorted(b[0] - a[1] for a, b in zip(policy.busy, policy.busy[1:]))
    print(f"  {name:<10} {episodes:4d} episodes in {wall:6.2f} s = {episodes / wall:5.1f} ep/s   policy utilisation "
          f"{util:5.1%} overall, {steady:5.1%} while episodes wait to start; "
          f"median gap between batches {1e3 * gaps[len(gaps) // 2]:.1f} ms")
    return episodes / wall, steady


async def throughput(args, tok, renderer) -> None:
    vocab = [i for i in range(len(tok)) if i not in set(tok.all_special_ids)]
    make_policy = lambda: SimulatedPolicy(vocab, tok.eos_token_id, fixed_s=args.fixed_s, per_token_s=args.per_token_s,
                                          max_batch_size=args.batch)
    specs = [GroupSpec(seed=s) for s in range(args.groups)]
    make_env = lambda: LatencyEnv(fast_s=args.fast_tool_s, slow_s=args.slow_tool_s)
    print(f"throughput: {args.groups} groups x {args.group_size}, {args.envs} env slots, batch {args.batch}, "
          f"policy {args.fixed_s * 1e3:.0f} ms + {args.per_token_s * 1e3:.2f} ms/token, "
          f"tools {args.fast_tool_s * 1e3:.0f} ms / {args.slow_tool_s * 1e3:.0f} ms (25% slow)")
    p = make_policy()
    base, base_util = await timed(
        "lock-step", p, lambda envs: lock_step(p, renderer, specs, args.group_size, args.envs, envs), make_env
    )
    q = make_policy()
    fast, fast_util = await timed(
        "async", q, lambda envs: async_engine(q, renderer, specs, args.group_size, args.envs, envs), make_env
    )
    print(f"  => async/lock-step throughput {fast / base:.2f}x (target >= 2x); steady-state policy utilisation "
          f"async {fast_util:.1%} (target >= 90%) vs lock-step {base_util:.1%}")


async def tree_vs_chain(args, tok, renderer) -> None:
    vocab = [i for i in range(len(tok)) if i not in set(tok.all_special_ids)]
    specs = [GroupSpec(seed=s) for s in range(args.groups)]
    results = {}
    for name in ("chain", "tree"):
        policy = SimulatedPolicy(vocab, tok.eos_token_id, fixed_s=0.0, per_token_s=0.0, max_batch_size=64)
        config = RolloutConfig(group_size=8, max_concurrency=64, sampling=SamplingParams(max_tokens=128),
                               episode_timeout_s=None, strict=True)
        engine = RolloutEngine(lambda: LatencyEnv(fast_s=0.0, slow_s=0.0), policy, renderer, config)
        if name == "chain":
            groups = await engine.run(specs)
            trajectories = sum(len(g.members) for g in groups)
        else:
            tree = TreeConfig(num_trees=2, rounds=2, expansions_per_round=3)
            groups = await engine.run_trees(specs, tree)
            trajectories = sum(len(t.leaves) for g in groups for t in g.members)
        await policy.batcher.aclose()
        results[name] = trajectories / policy.generated
        print(f"  {name:<6} {trajectories:4d} trajectories for {policy.generated:6d} generated tokens "
              f"= {1e3 * results[name]:.2f} per 1k tokens")
    print(f"  => tree/chain trajectories per token {results['tree'] / results['chain']:.2f}x (target >= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--envs", type=int, default=64, help="env slots (lock-step wave size = async concurrency)")
    parser.add_argument("--batch", type=int, default=16, help="policy max batch size")
    parser.add_argument("--fixed-s", type=float, default=0.02)
    parser.add_argument("--per-token-s", type=float, default=0.0005)
    parser.add_argument("--fast-tool-s", type=float, default=0.01)
    parser.add_argument("--slow-tool-s", type=float, default=0.3)
    parser.add_argument("--scale", type=float, default=3.0,
                        help="multiply every simulated latency (keeps Python overhead small on a busy CPU)")
    args = parser.parse_args()
    for name in ("fixed_s", "per_token_s", "fast_tool_s", "slow_tool_s"):
        setattr(args, name, getattr(args, name) * args.scale)
    if args.quick:
        args.groups = 16
    tok = build_tiny_tokenizer()
    renderer = ChatRenderer(tok)
    asyncio.run(throughput(args, tok, renderer))
    print("tree vs chain (equal settings, Tree-GRPO M=2 L=2 N=3 vs G=8 chains):")
    asyncio.run(tree_vs_chain(args, tok, renderer))


if __name__ == "__main__":
    main()
