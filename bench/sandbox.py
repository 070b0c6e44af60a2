"""Sandbox benchmark: cold start, pool acquire, execute round trip, throughput, memory.

Every figure is printed beside baselines measured in the same run:

* ``python -c CODE`` per call (what several frameworks do);
* a plain jupyter_client blocking execute loop against a default ipykernel (TCP transport);
* the floor: a persistent Python worker behind a pipe.

Usage: ``python bench/sandbox.py [--backends local,docker] [--n 300] [--concurrency 1,8,32]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from agentrl_sandboxes import procs

from agentrl.sandbox import Limits, SandboxPool, create

CELL = "1 + 1"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def baseline_subprocess(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"print({CELL})"], capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def baseline_jupyter(n: int) -> list[float]:
    from jupyter_client import KernelManager

    km = KernelManager()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(60)
    out = []
    try:
        for i in range(n + 20):
            t = time.perf_counter()
            kc.execute_interactive(CELL, output_hook=lambda msg: None, timeout=30)
            if i >= 20:
                out.append(time.perf_counter() - t)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return out


def baseline_worker(n: int) -> list[float]:
    worker = subprocess.Popen(
        [sys.executable, "-u", "-c", "import sys\nfor line in sys.stdin:\n    print(eval(line))"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out = []
    for _ in range(n):
        t = time.perf_counter()
        worker.stdin.write(CELL + "\n")
        worker.stdin.flush()
        worker.stdout.readline()
        out.append(time.perf_counter() - t)
    worker.stdin.close()
    worker.wait()
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * 4096
        except OSError:
            pass
    return total / 2**20


async def bench_backend(backend: str, n: int, concurrency: list[int], base: dict) -> None:
    limits = Limits()
    starts = []
    for _ in range(3):
        t = time.perf_counter()
        sb = await create(backend, limits)
        starts.append(time.perf_counter() - t)
        await sb.close()
    print(
        f"\n[{backend}] cold start (process/container + kernel ready): p50 {statistics.median(starts) * 1e3:.0f} ms"
    )

    async with await create(backend, limits) as sb:
        for _ in range(30):
            await sb.run_code(CELL)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await sb.run_code(CELL)
            lat.append(time.perf_counter() - t)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        print(f"[{backend}] execute round trip: p50 {p50 * 1e3:.2f} ms  p99 {p99 * 1e3:.2f} ms")
        for name, xs in base.items():
            print(f"    vs {name:<28} p50 {pct(xs, 0.5) * 1e3:7.2f} ms  -> {pct(xs, 0.5) / p50:6.2f}x")
        if backend == "local":
            pids = [sb.proc.pid, *procs.descendants(sb.proc.pid)]
            print(f"[{backend}] memory per live sandbox (RSS server + kernel): {rss_mb(pids):.0f} MiB")
        else:
            stats = await asyncio.to_thread(sb.container.stats, stream=False)
            print(
                f"[{backend}] memory per live sandbox (container cgroup): {stats['memory_stats']['usage'] / 2**20:.0f} MiB"
            )

    for c in concurrency:
        async with SandboxPool(backend=backend, size=c, max_size=c, limits=limits, health_interval=0) as pool:
            acquire = []
            for _ in range(50):
                t = time.perf_counter()
                s = await pool.acquire()
                acquire.append(time.perf_counter() - t)
                await pool.release(s, reset=False)
                await asyncio.sleep(0)
            per_worker = max(20, n // c)

            async def worker(per_worker: int = per_worker):
                async with pool.sandbox() as s:
                    for _ in range(per_worker):
                        await s.run_code(CELL)

            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(c)))
            wall = time.perf_counter() - t
            print(
                f"[{backend}] concurrency {c:>2}: {c * per_worker / wall:7.0f} cells/s   "
                f"pool acquire p50 {pct(acquire, 0.5) * 1e6:.0f} us"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    print("baselines (same run):")
    base = {
        "python -c per call": baseline_subprocess(max(30, args.n // 5)),
        "plain jupyter_client loop": baseline_jupyter(args.n),
        "persistent pipe worker": baseline_worker(args.n),
    }
    for name, xs in base.items():
        print(f"    {name:<28} p50 {pct(xs, 0.5) * 1e3:7.2f} ms  p99 {pct(xs, 0.99) * 1e3:7.2f} ms")
    for backend in args.backends.split(","):
        try:
            asyncio.run(bench_backend(backend, args.n, [int(c) for c in args.concurrency.split(",")], base))
        except Exception as exc:  # noqa: BLE001 - report and go on (e.g. no Docker engine)
            print(f"[{backend}] skipped: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
