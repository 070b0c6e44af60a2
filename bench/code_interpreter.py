"""Code-interpreter environment benchmark: step overhead and episodes/s, per sandbox backend.

1. **Step overhead.** ``env.astep`` on a trivial cell (``x = 1``) against the same cell sent
   straight to a sandbox with ``run_code`` from the caller's loop (the baseline: what any env must
   pay), and the kernel's own run time (``ExecResult.duration``). The difference is what the env
   adds: parsing, the hop to the pools' loop, observation formatting, the state key. The pure
   Python part (parse + format, no sandbox) is timed separately.
2. **Episodes per second** at concurrency 1, 8 and 32: oracle episodes of ``CodeMath-v0`` (three
   turns: compute, ``print(answer)`` from kernel state, ``\\boxed{}``) with one warm pool shared by
   all env instances, beside the baseline measured in the same run — a fresh sandbox started and
   closed for every episode, running the same two cells (no pool).

    .venv/bin/python bench/code_interpreter.py                         # local, and docker if up
    .venv/bin/python bench/code_interpreter.py --backends local --concurrency 1,8 --steps 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from agentrl_envs.code_interpreter.actions import parse_action
from agentrl_envs.code_interpreter.env import execution_text
from agentrl_envs.code_interpreter.oracle import answer_cell
from agentrl_envs.code_interpreter.pools import close_pools

import agentrl
from agentrl.env import OracleAgent, aplay_episode
from agentrl.sandbox import ExecResult, SandboxUnavailable, create

CELL = "```python\nx = 1\n```"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


START_TIMEOUT_S = 180.0  # many sandboxes booting at once on a busy machine need more than the default 60 s


def make_env(backend: str, pool_size: int, pool_max: int, **options):
    return agentrl.make(
        "agentrl/CodeMath-v0", backend=backend, per_family=40, pool_size=pool_size, pool_max=pool_max,
        max_turns=100_000, sandbox_options={"start_timeout_s": START_TIMEOUT_S}, **options,
    )  # fmt: skip


def python_overhead(n: int = 20_000) -> float:
    """Seconds per parse_action + observation formatting (no sandbox)."""
    result = ExecResult(stdout="42\n", result="43", duration=0.001)
    started = time.perf_counter()
    for _ in range(n):
        parse_action(CELL)
        execution_text(result, 2000)
    return (time.perf_counter() - started) / n


async def step_overhead(backend: str, steps: int) -> None:
    """Env steps and direct run_code calls interleaved, so load drift hits both alike."""
    env = make_env(backend, pool_size=1, pool_max=4)
    sandbox = await create(backend)
    try:
        await env.areset(seed=0)
        for _ in range(5):  # warm: sandbox acquired, kernels hot
            await env.astep(CELL)
            await sandbox.run_code("x = 1")
        env_times, raw_times, kernel_times = [], [], []
        for _ in range(steps):
            started = time.perf_counter()
            *_, info = await env.astep(CELL)
            env_times.append(time.perf_counter() - started)
            kernel_times.append(info["execution"]["duration"])
            started = time.perf_counter()
            await sandbox.run_code("x = 1")
            raw_times.append(time.perf_counter() - started)
    finally:
        await sandbox.close()
        await env.aclose()

    env_p50, raw_p50 = statistics.median(env_times), statistics.median(raw_times)
    kernel_p50 = statistics.median(kernel_times)
    print(f"[{backend}] step overhead, trivial cell, {steps} steps (p50):")
    print(f"  kernel's own run time        {ms(kernel_p50)}")
    print(f"  baseline: sandbox.run_code   {ms(raw_p50)}")
    print(f"  env.astep                    {ms(env_p50)}   ratio env/baseline {env_p50 / raw_p50:5.2f}x")
    print(
        f"  env overhead outside the code {ms(env_p50 - kernel_p50)}  (of which beyond run_code: {ms(env_p50 - raw_p50)})"
    )


async def pooled_episodes(backend: str, concurrency: int, episodes: int) -> float:
    # the pool keeps pool_size sandboxes idle beyond those in use, up to pool_max: a cap above
    # what the run needs makes it start sandboxes (seconds of CPU each) inside the measured window
    envs = [
        make_env(backend, pool_size=concurrency + 4, pool_max=concurrency + 4) for _ in range(concurrency)
    ]
    pool = await envs[0].pool()  # shared: started (warm) before the clock starts
    del pool
    queue: asyncio.Queue[int] = asyncio.Queue()
    for seed in range(episodes):
        queue.put_nowait(seed)
    failures = 0

    async def worker(env) -> None:
        nonlocal failures
        while not queue.empty():
            seed = queue.get_nowait()
            trajectory = await aplay_episode(env, OracleAgent(env), seed=seed)
            failures += not trajectory.success

    started = time.perf_counter()
    await asyncio.gather(*(worker(env) for env in envs))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(env.aclose() for env in envs))
    if failures:
        raise RuntimeError(f"{failures} oracle episodes failed")
    return episodes / elapsed


async def cold_episodes(backend: str, concurrency: int, episodes: int, tasks) -> float:
    """Baseline: a fresh sandbox per episode (start, two cells, close), no pool."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(episodes):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            task = tasks[queue.get_nowait() % len(tasks)]
            async with await create(backend, start_timeout_s=START_TIMEOUT_S) as sandbox:
                await sandbox.run_code(answer_cell(task.data))
                await sandbox.run_code("print(answer)")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return episodes / (time.perf_counter() - started)


async def throughput(backend: str, levels: list[int], episodes_per_worker: int) -> None:
    tasks = list(make_env(backend, 0, 1).tasks.split("train"))
    print(f"[{backend}] oracle episodes/s (3 turns, 2 cells), warm shared pool vs fresh sandbox per episode:")
    for concurrency in levels:
        try:
            pooled = await pooled_episodes(backend, concurrency, max(8, episodes_per_worker * concurrency))
            close_pools()
            cold = await cold_episodes(backend, concurrency, max(4, concurrency), tasks)
        except SandboxUnavailable as exc:  # too many sandboxes for this machine: say so, go on
            close_pools()
            print(f"  concurrency {concurrency:3d}: sandboxes unavailable ({exc})")
            continue
        print(f"  concurrency {concurrency:3d}: pooled {pooled:7.2f} ep/s   fresh sandbox {cold:7.2f} ep/s   "
              f"ratio {pooled / cold:5.1f}x   (load {os.getloadavg()[0]:.1f})")  # fmt: skip


def docker_up() -> bool:
    try:
        from agentrl.sandbox.image import docker_client

        docker_client().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--episodes-per-worker", type=int, default=2)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures are wall-clock)")
    print(f"pure Python per step (parse + format): {python_overhead() * 1e6:.1f} us")
    for backend in args.backends.split(","):
        if backend == "docker" and not docker_up():
            print("[docker] skipped: no Docker engine reachable")
            continue
        asyncio.run(step_overhead(backend, args.steps))
        close_pools()
        asyncio.run(throughput(backend, levels, args.episodes_per_worker))
        close_pools()


if __name__ == "__main__":
    main()
