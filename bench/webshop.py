"""Benchmark of agentrl/WebShop-v0, each figure beside a baseline measured in the same run.

* build: catalog + goals + index for one shop (time, traced memory);
* search latency p50/p99 on distinct queries (cold) vs repeated queries (the per-query cache);
* env step time excluding search (clicks) vs a search step;
* fork(): the cheap page-state copy vs the base class's reset-and-replay fork;
* oracle episodes/s at concurrency 1/8/32 with one shared shop per process vs a private shop per
  env instance (how WebShop's wrappers load the catalog and index per worker), construction included.

Run: ``.venv/bin/python bench/webshop.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc

import numpy as np
from agentrl_envs.webshop import Shop, WebShopEnv, shared_shop

from agentrl.env import OracleAgent, TextEnv, aplay_episode


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_build() -> dict:
    gc.collect()
    start = time.perf_counter()
    shop = Shop()
    return {"seconds": time.perf_counter() - start, "products": len(shop.products), "goals": len(shop.goals)}


def measure_search(shop: Shop, n: int) -> dict:
    queries = [g.instruction_text for g in list(shop.goals.values())[:n]]
    shop.search_engine.search.cache_clear()
    cold = []
    for q in queries:
        t = time.perf_counter()
        shop.search(q)
        cold.append(time.perf_counter() - t)
    warm = []
    for q in queries:
        t = time.perf_counter()
        shop.search(q)
        warm.append(time.perf_counter() - t)
    return {"cold": cold, "warm": warm}


def measure_steps(n_goals: int) -> dict:
    env = WebShopEnv()
    tasks = env.tasks.split("test")[:n_goals]
    click, search, fork_cheap, fork_replay = [], [], [], []
    env.shop.search_engine.search.cache_clear()
    for task in tasks:
        env.reset(seed=0, options={"task_id": task.id})
        while not env.done:
            action = env.oracle_action()
            t = time.perf_counter()
            env.step(action)
            (search if action.startswith("search[") else click).append(time.perf_counter() - t)
            if env.state.page == "item" and not env.done:
                t = time.perf_counter()
                env.fork()
                fork_cheap.append(time.perf_counter() - t)
                t = time.perf_counter()
                TextEnv.fork(env)
                fork_replay.append(time.perf_counter() - t)
    env.close()
    return {"click": click, "search": search, "fork": fork_cheap, "fork_replay": fork_replay}


async def oracle_throughput(concurrency: int, episodes: int, shared: bool) -> float:
    """Episodes/s for ``concurrency`` env instances playing oracle episodes, construction included."""
    gc.collect()
    start = time.perf_counter()
    envs = [WebShopEnv(shared_index=shared) for _ in range(concurrency)]
    test_ids = envs[0].tasks.split("test").ids()
    queue = asyncio.Queue()
    for i in range(episodes):
        queue.put_nowait(test_ids[i % len(test_ids)])
    rewards = []

    async def worker(env: WebShopEnv) -> None:
        agent = OracleAgent(env)
        while not queue.empty():
            task_id = queue.get_nowait()
            trajectory = await aplay_episode(env, agent, seed=0, task_id=task_id)
            rewards.append(trajectory.final_reward)
            await asyncio.sleep(0)  # let the other workers interleave

    await asyncio.gather(*(worker(env) for env in envs))
    seconds = time.perf_counter() - start
    for env in envs:
        env.close()
    assert len(rewards) == episodes and min(rewards) == 1.0
    return episodes / seconds


def instances_memory(n: int, shared: bool) -> float:
    """Traced MB held by ``n`` env instances after their first reset (catalog, goals, index, pages)."""
    gc.collect()
    tracemalloc.start()
    envs = [WebShopEnv(shared_index=shared) for _ in range(n)]
    for env in envs:
        env.reset(seed=0)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for env in envs:
        env.close()
    return current / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer queries, goals and episodes")
    args = parser.parse_args()
    n_queries, n_goals, episodes = (200, 50, 64) if args.quick else (1000, 200, 256)

    us = 1e6
    build = measure_build()
    shop = shared_shop()  # held for the rest of the run
    print(f"catalog: {build['products']} products, {build['goals']} goals")
    print(f"build one shop (catalog from cache + goals + BM25 index): {build['seconds']:.2f} s")

    s = measure_search(shop, n_queries)
    cold50, cold99 = percentile(s["cold"], 50) * us, percentile(s["cold"], 99) * us
    warm50 = percentile(s["warm"], 50) * us
    print(
        f"search latency, {n_queries} distinct queries: p50 {cold50:.0f} us, p99 {cold99:.0f} us; "
        f"repeated (cached) p50 {warm50:.1f} us  -> cache speed-up x{cold50 / warm50:.0f}"
    )

    st = measure_steps(n_goals)
    click50, search50 = statistics.median(st["click"]) * us, statistics.median(st["search"]) * us
    print(
        f"env step excluding search (click), p50 {click50:.0f} us, p99 {percentile(st['click'], 99) * us:.0f} us; "
        f"search step p50 {search50:.0f} us  -> ratio {search50 / click50:.1f}"
    )
    fork50, replay50 = statistics.median(st["fork"]) * us, statistics.median(st["fork_replay"]) * us
    print(
        f"fork(): page-state copy p50 {fork50:.1f} us vs reset-and-replay p50 {replay50:.0f} us "
        f" -> x{replay50 / fork50:.0f} faster"
    )

    del shop  # each throughput run starts from a process without a shop, and builds what it needs
    gc.collect()
    asyncio.run(oracle_throughput(1, 1, shared=False))  # warm-up: the episode loop's first-call imports
    print(f"oracle episodes/s ({episodes} episodes, env and shop construction included):")
    for c in (1, 8, 32):
        shared = asyncio.run(oracle_throughput(c, episodes, shared=True))
        private = asyncio.run(oracle_throughput(c, episodes, shared=False))
        print(
            f"  concurrency {c:>2}: shared index {shared:7.1f} eps/s | per-instance index {private:7.1f} eps/s"
            f"  -> x{shared / private:.1f}"
        )
    n = 8
    shared_mb, private_mb = instances_memory(n, shared=True), instances_memory(n, shared=False)
    print(
        f"memory of {n} env instances: shared index {shared_mb:.1f} MB | per-instance index {private_mb:.1f} MB"
        f"  -> x{private_mb / shared_mb:.1f} less"
    )


if __name__ == "__main__":
    main()
