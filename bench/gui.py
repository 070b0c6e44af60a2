"""GUI environment benchmark: both tiers, pooled browsers vs a fresh browser per episode.

Prints, for the Python tier, oracle episode time and steps/s; for the browser tier, Chromium
start time, memory per browser (PSS of chromedriver + Chromium + helpers, so shared pages are
not counted twice) and, at each concurrency, episode time and steps/s with warm pooled
browsers beside the baseline measured in the same run — a fresh browser started and closed for
every episode — as a ratio.

    .venv/bin/python bench/gui.py                      # concurrency 1,4,8
    .venv/bin/python bench/gui.py --concurrency 1,2 --episodes 16
    .venv/bin/python bench/gui.py --backend docker     # browsers in sandbox containers
    .venv/bin/python bench/gui.py --sim-only           # the Python tier alone (per family too)

With ``--backend docker`` the browser start time is printed beside a local start in the same run,
and memory per browser is not measured (the browser's processes live in the container).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import psutil
from agentrl_envs.gui.browser.chromium import Browser, BrowserConfig, launch
from agentrl_envs.gui.browser.env import MiniWoBEnv
from agentrl_envs.gui.browser.pool import BrowserPool
from agentrl_envs.gui.sim.env import GuiSimEnv

from agentrl.env import OracleAgent, aplay_episode

FAMILIES = ["click-button", "click-checkboxes", "login-user", "choose-list", "click-tab", "enter-text"]


def bench_sim(episodes: int, families: list[str] | None = None) -> tuple[float, float]:
    families = families or list(GuiSimEnv.FAMILIES)
    env = GuiSimEnv(families=families, instances_per_family=max(1, episodes // len(families)))
    steps, started = 0, time.perf_counter()
    for task in env.tasks:
        env.reset(options={"task_id": task.id})
        while not env.done:
            env.step(env.oracle_action())
            steps += 1
    elapsed = time.perf_counter() - started
    return elapsed / len(env.tasks), steps / elapsed


def pss_mb(browser: Browser) -> float:
    if browser.config.backend != "local":
        return float("nan")
    total = 0
    for pid in browser.pids:
        try:
            info = psutil.Process(pid).memory_full_info()
            total += getattr(info, "pss", info.rss)
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


async def run_browser(
    concurrency: int, episodes: int, fresh: bool, config: BrowserConfig
) -> tuple[float, float, float]:
    """(mean episode seconds, steps/s, mean PSS MB per browser) over ``episodes`` oracle episodes."""
    shared = None if fresh else BrowserPool(size=concurrency, config=config)
    tasks = [f"{FAMILIES[i % len(FAMILIES)]}/{i:04d}" for i in range(episodes)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for task_id in tasks:
        queue.put_nowait(task_id)
    durations: list[float] = []
    memory: list[float] = []
    steps = 0

    async def worker() -> None:
        nonlocal steps
        env = None if fresh else MiniWoBEnv(pool=shared, families=FAMILIES, instances_per_family=episodes)
        while not queue.empty():
            task_id = queue.get_nowait()
            pool = BrowserPool(size=1, config=config) if fresh else shared
            if fresh:
                env = MiniWoBEnv(pool=pool, families=FAMILIES, instances_per_family=episodes)
            started = time.perf_counter()
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task_id)
            durations.append(time.perf_counter() - started)
            steps += len(trajectory.steps)
            memory.append(pss_mb(env.browser))
            if fresh:
                await env.aclose()
                await asyncio.to_thread(pool.close)
        if not fresh:
            await env.aclose()

    try:
        if shared is not None:  # warm the pool: start-up is measured separately
            warm = await asyncio.gather(*(shared.aacquire() for _ in range(concurrency)))
            for browser in warm:
                shared.release(browser)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        if shared is not None:
            shared.close()
    return statistics.mean(durations), steps / elapsed, statistics.mean(memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--episodes", type=int, default=24, help="browser episodes per setting")
    parser.add_argument("--sim-episodes", type=int, default=2000)
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument("--sim-only", action="store_true", help="only the Python tier, overall and per family")
    args = parser.parse_args()
    config = BrowserConfig(backend=args.backend, start_timeout_s=120)

    episode_s, steps_s = bench_sim(args.sim_episodes)
    print(f"python tier: {episode_s * 1e3:.2f} ms/episode, {steps_s:,.0f} steps/s (oracle)")
    if args.sim_only:
        for family in GuiSimEnv.FAMILIES:
            episode_s, steps_s = bench_sim(max(20, args.sim_episodes // 10), [family])
            print(f"  {family:<22} {episode_s * 1e3:6.2f} ms/episode {steps_s:8,.0f} steps/s")
        return

    def mean_start(config: BrowserConfig) -> float:
        starts = []
        for _ in range(3):
            browser = launch(config)
            starts.append(browser.start_seconds)
            browser.close()
        return statistics.mean(starts)

    start = mean_start(config)
    print(f"browser start ({args.backend}): {start:.2f} s (mean of 3)")
    if args.backend != "local":
        local = mean_start(BrowserConfig())
        print(f"browser start (local, baseline): {local:.2f} s (mean of 3) -> {start / local:.2f}x")

    print(f"{'conc':>4} | {'pooled ep s':>11} {'steps/s':>8} {'MB/browser':>10} | "
          f"{'fresh ep s':>10} {'steps/s':>8} | {'speed-up':>8}")
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        pooled = asyncio.run(run_browser(concurrency, args.episodes, fresh=False, config=config))
        fresh = asyncio.run(run_browser(concurrency, args.episodes, fresh=True, config=config))
        print(f"{concurrency:>4} | {pooled[0]:>11.3f} {pooled[1]:>8.1f} {pooled[2]:>10.0f} | "
              f"{fresh[0]:>10.3f} {fresh[1]:>8.1f} | {pooled[1] / fresh[1]:>7.1f}x", flush=True)


if __name__ == "__main__":
    main()
