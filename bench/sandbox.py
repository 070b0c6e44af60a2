"""Sandbox benchmark: cold start, reset, pool acquire, execute round trip, throughput, memory.

Every figure is printed beside baselines measured in the same run:

* ``python -c CODE`` per call (what several frameworks do);
* a plain jupyter_client blocking execute loop against a default ipykernel (TCP transport);
* OpenEnv's WebSocket env server (``openenv`` + uvicorn, if installed) with an in-process
  ``exec`` executor, driven by its own ``GenericEnvClient``;
* the floor: a persistent Python worker behind a pipe (this and OpenEnv's are measured again
  right before each backend's execute figure, so load drift in a long run does not skew the
  close ratios);
* for reset: the restart path before the zygote — a fresh interpreter building the IPython
  shell inside the same sandbox (and with numpy, sympy and the inline backend imported, which
  the zygote also gives).

Throughput at each concurrency comes with the CPU seconds per cell of the client process, the
sandbox servers and the kernels (from ``/proc``), so the limit at c=8 on a small machine shows.
Every worker holds its sandbox before the clock starts (one the pool could not start in time is
started then, and counted in the output), so the window holds cells only.
The load average is printed beside each figure (the machine may be shared).

Usage: ``python bench/sandbox.py [--backends local,docker] [--n 300] [--concurrency 1,8,32]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from agentrl_sandboxes import procs

from agentrl.sandbox import Limits, SandboxPool, create

CELL = "print(1 + 1)"
START_TIMEOUT_S = 180.0
OLD_RESTART = "from agentrl_sandboxes.shell import make_shell; make_shell()"
OLD_RESTART_PRELOADED = OLD_RESTART + "; import numpy.random, sympy, matplotlib_inline.backend_inline"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def baseline_subprocess(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", CELL], capture_output=True, check=True)
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
        [sys.executable, "-u", "-c", "import sys\nfor line in sys.stdin:\n    exec(line)"],
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


def baseline_openenv(n: int) -> list[float] | None:
    """OpenEnv's env server (WebSocket sessions) whose step runs the code with ``exec`` in-process."""
    try:
        import contextlib
        import io
        import socket
        import threading

        import uvicorn
        from openenv.core import GenericEnvClient
        from openenv.core.env_server import http_server
        from openenv.core.env_server.interfaces import Environment
        from openenv.core.env_server.types import Action, Observation, State
    except ImportError:
        return None

    class CodeAction(Action):
        code: str

    class CodeObservation(Observation):
        stdout: str = ""

    class ExecEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self):
            super().__init__()
            self.namespace: dict = {}
            self._state = State(step_count=0)

        def reset(self, seed=None, episode_id=None, **kwargs) -> CodeObservation:
            self.namespace = {}
            return CodeObservation()

        def step(self, action: CodeAction, timeout_s=None, **kwargs) -> CodeObservation:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(action.code, self.namespace)  # noqa: S102 - the in-process executor baseline
            return CodeObservation(stdout=out.getvalue())

        @property
        def state(self) -> State:
            return self._state

    app = http_server.create_app(
        ExecEnvironment, CodeAction, CodeObservation, env_name="exec", max_concurrent_envs=4
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out = []
    try:
        with GenericEnvClient(base_url=f"http://127.0.0.1:{port}").sync() as client:
            client.reset()
            for i in range(n + 20):
                t = time.perf_counter()
                result = client.step({"code": CELL})
                if i >= 20:
                    out.append(time.perf_counter() - t)
            assert result.observation["stdout"] == "2\n", result.observation
    finally:
        server.should_exit = True
        thread.join(10)
    return out


def cpu_seconds(pids: list[int]) -> dict[str, float]:
    """utime + stime of each process, summed by role (server / kernel+zygote / other)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "kernel": 0.0}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        role = (
            "server" if b"agentrl_sandboxes.server" in cmdline else "kernel" if b"zygote" in cmdline else None
        )
        if role:
            out[role] += (int(fields[11]) + int(fields[12])) / tick
    return out


def sandbox_pids(sb) -> list[int]:
    if sb.backend == "local":
        return procs.descendants(sb.proc.pid)
    return [int(row[1]) for row in sb.container.top()["Processes"]]


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
    # many sandboxes booting at once on a busy 2-core machine need more than the default 60 s
    limits = Limits(start_timeout_s=START_TIMEOUT_S)
    print()
    async with await create(backend, limits) as sb:
        for _ in range(30):
            await sb.run_code(CELL)
        lat, inside = [], []
        for _ in range(n):
            t = time.perf_counter()
            result = await sb.run_code(CELL)
            lat.append(time.perf_counter() - t)
            inside.append(result.duration)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        print(
            f"[{backend}] execute `{CELL}` round trip: p50 {p50 * 1e3:.2f} ms  p99 {p99 * 1e3:.2f} ms  ({load()})"
            f"  of which in the server (request to kernel, cell, reply read) p50 {pct(inside, 0.5) * 1e3:.2f} ms"
        )
        for name, xs in base.items():
            print(f"    vs {name:<28} p50 {pct(xs, 0.5) * 1e3:7.2f} ms  -> {pct(xs, 0.5) / p50:6.2f}x")
        resets, old, old_pre = [], [], []
        for _ in range(max(10, n // 10)):
            t = time.perf_counter()
            await sb.reset()
            resets.append(time.perf_counter() - t)
        for code, xs in ((OLD_RESTART, old), (OLD_RESTART_PRELOADED, old_pre)):
            for _ in range(5):
                t = time.perf_counter()
                proc = await sb.exec(["python", "-c", code], timeout=60)
                assert proc.returncode == 0, proc.stderr
                xs.append(time.perf_counter() - t)
        r50 = pct(resets, 0.5)
        print(f"[{backend}] reset (kill, wipe, fresh kernel forked + ready): p50 {r50 * 1e3:.1f} ms  "
              f"p90 {pct(resets, 0.9) * 1e3:.1f} ms  ({load()})")  # fmt: skip
        for name, xs in (("restart before the zygote", old), ("... + numpy, sympy, inline", old_pre)):
            print(f"    vs {name:<28} p50 {pct(xs, 0.5) * 1e3:7.1f} ms  -> {pct(xs, 0.5) / r50:6.1f}x")
        if backend == "local":
            pids = [sb.proc.pid, *procs.descendants(sb.proc.pid)]
            print(f"[{backend}] memory per live sandbox (RSS server + kernel): {rss_mb(pids):.0f} MiB")
        else:
            stats = await asyncio.to_thread(sb.container.stats, stream=False)
            print(
                f"[{backend}] memory per live sandbox (container cgroup): {stats['memory_stats']['usage'] / 2**20:.0f} MiB"
            )

    starts = []
    for _ in range(3):
        t = time.perf_counter()
        sb = await create(backend, limits)
        starts.append(time.perf_counter() - t)
        await sb.close()
    print(
        f"[{backend}] cold start (process/container + kernel ready): p50 {statistics.median(starts) * 1e3:.0f} ms"
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
            per_worker = max(50, n // c)
            # every worker's sandbox in hand before the clock starts: one that failed to start
            # with the pool is started here, not inside the measured window
            late = c - pool.stats()["live"]
            held = [await pool.acquire() for _ in range(c)]

            async def worker(s, per_worker: int = per_worker):
                for _ in range(per_worker):
                    await s.run_code(CELL)

            pids = [pid for s in held for pid in sandbox_pids(s)]
            before, client_before = cpu_seconds(pids), time.process_time()
            t = time.perf_counter()
            await asyncio.gather(*(worker(s) for s in held))
            wall = time.perf_counter() - t
            after, client = cpu_seconds(pids), time.process_time() - client_before
            for s in held:
                await pool.release(s)
            cells = c * per_worker
            cpu = {"client": client, **{k: after[k] - before[k] for k in after}}
            split = "  ".join(f"{k} {v / cells * 1e6:.0f}" for k, v in cpu.items())
            print(
                f"[{backend}] concurrency {c:>2}: {cells / wall:7.0f} cells/s  ({load()})  "
                f"CPU us/cell: {split} = {sum(cpu.values()) / cells * 1e6:.0f}   "
                f"pool acquire p50 {pct(acquire, 0.5) * 1e6:.0f} us"
                + (f"  ({late} of {c} sandboxes did not start with the pool)" if late else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="local,docker")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    print(f"baselines (same run, {load()} on {os.cpu_count()} CPUs):")
    base = {
        "python -c per call": baseline_subprocess(max(30, args.n // 5)),
        "plain jupyter_client loop": baseline_jupyter(args.n),
    }
    show(base)
    for backend in args.backends.split(","):
        # the sub-millisecond baselines again right before this backend's execute figure: the load
        # of a shared machine drifts within a run, and these ratios are the close ones
        near = {"persistent pipe worker": baseline_worker(args.n)}
        openenv = baseline_openenv(args.n)
        if openenv is None:
            print("    (OpenEnv baseline skipped: `openenv` / uvicorn not installed)")
        else:
            near["OpenEnv ws server, exec"] = openenv
        print(f"\nbaselines measured right before [{backend}] ({load()}):")
        show(near)
        try:
            concurrency = [int(c) for c in args.concurrency.split(",")]
            asyncio.run(bench_backend(backend, args.n, concurrency, {**base, **near}))
        except Exception as exc:  # noqa: BLE001 - report and go on (e.g. no Docker engine)
            print(f"[{backend}] skipped: {type(exc).__name__}: {exc}")


def show(base: dict[str, list[float]]) -> None:
    for name, xs in base.items():
        print(f"    {name:<28} p50 {pct(xs, 0.5) * 1e3:7.2f} ms  p99 {pct(xs, 0.99) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
