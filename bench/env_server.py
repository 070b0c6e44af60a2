"""How many sessions one ``agentrl env serve`` process holds, and what the remote path costs.

One server process (a child, 127.0.0.1 only) serves a latency-bound env: each step waits
``--delay-ms`` on the event loop, as an env waiting on a sandbox or browser does. In the same run:

1. **Overhead**: ``--steps`` sequential steps on the in-process env and on a RemoteEnv of the
   same env, at 0 ms delay (pure overhead) and at ``--delay-ms``; p50/p99 of each, printed as
   remote/in-process ratios and as the added microseconds. ``--unix`` adds a RemoteEnv over a
   Unix socket (the transport of the env server in a container) and its ratio to TCP.
2. **Sessions**: for each level in ``--levels``, that many concurrent sessions (RemoteEnvs
   built beforehand) each reset and play ``--episode-steps`` steps; success = the episode
   finished without an error within ``--timeout-s``. The largest level at >= 95% success is reported, with the step p50/p99
   under that load against the env's own delay.

Usage: ``nice python bench/env_server.py [--levels 128,256,512,1024] [--delay-ms 50] [--unix]``
(``--levels ""`` measures the overhead only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from aiohttp import web

import agentrl
from agentrl.env import StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.base import EnvConfig
from agentrl.env.remote import RemoteEnv
from agentrl.env.server import EnvServer

ENV_ID = "bench/Latency-v0"


class LatencyConfig(EnvConfig):
    delay_ms: float = 0.0
    max_turns: int = 1_000_000


class LatencyEnv(TextEnv):
    """Echoes the action after ``delay_ms`` of waiting (no CPU work)."""

    Config = LatencyConfig

    def build_tasks(self) -> TaskSet:
        return TaskSet([Task(id="t0", split="train")])

    async def _areset(self, task: Task) -> str:
        return "ready"

    async def _astep(self, action: str) -> StepOutcome:
        if self.config.delay_ms:
            await asyncio.sleep(self.config.delay_ms / 1000)
        return StepOutcome(action)


agentrl.register(ENV_ID, LatencyEnv)


def serve(port: int, unix: str | None, delay_ms: float, max_sessions: int) -> None:
    server = EnvServer(ENV_ID, {"delay_ms": delay_ms}, max_sessions=max_sessions, idle_timeout_s=120)
    listen = {"path": unix} if unix else {"host": "127.0.0.1", "port": port}
    web.run_app(server.app(), **listen, print=None, access_log=None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ServerProcess:
    """``bench/env_server.py --serve`` in a child process, on a free TCP port or a Unix socket."""

    def __init__(self, delay_ms: float, max_sessions: int, unix: bool = False):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="agentrl-bench-") if unix else None
        path = os.path.join(self.folder, "env.sock") if self.folder else None
        argv = [sys.executable, __file__, "--serve", str(self.port), "--delay-ms", str(delay_ms)]
        argv += ["--max-sessions", str(max_sessions)] + (["--serve-unix", path] if path else [])
        self.proc = subprocess.Popen(argv, start_new_session=True)
        self.url = f"unix://{path}" if path else f"ws://127.0.0.1:{self.port}"
        for _ in range(300):
            if self._up(path):
                return
            time.sleep(0.1)
        raise SystemExit("the env server did not start")

    def _up(self, path: str | None) -> bool:
        try:
            if path is None:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
            else:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
            return True
        except OSError:
            return False

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


async def step_times(env: TextEnv, steps: int) -> list[float]:
    await env.areset(seed=0)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        await env.astep(f"step {i}")
        times.append(time.perf_counter() - start)
    return times


async def remote_step_times(delay: float, steps: int, unix: bool) -> list[float]:
    server = ServerProcess(delay, 16, unix=unix)
    try:
        remote = RemoteEnv(server.url, ENV_ID)
        await step_times(remote, 50)  # warm-up: connection, first session
        times = await step_times(remote, steps)
        await remote.aclose()
        return times
    finally:
        server.stop()


async def overhead(steps: int, delay_ms: float, unix: bool) -> None:
    print(f"step latency, {steps} sequential steps (in-process vs remote, same run)")
    print(
        f"{'delay':>8} {'remote':>6} {'in-proc p50':>12} {'remote p50':>11} {'ratio':>7} {'+us':>7} "
        f"{'in-proc p99':>12} {'remote p99':>11} {'ratio':>7} {'+us':>7}"
    )
    for delay in (0.0, delay_ms):
        local = await step_times(agentrl.make(ENV_ID, delay_ms=delay), steps)
        remotes = {"tcp": await remote_step_times(delay, steps, unix=False)}
        if unix:
            remotes["unix"] = await remote_step_times(delay, steps, unix=True)
        for transport, times in remotes.items():
            row = [f"{delay:>6g}ms", f"{transport:>6}"]
            for q in (0.5, 0.99):
                pa, pb = percentile(local, q), percentile(times, q)
                row += [
                    f"{pa * 1e6:>10.0f}us",
                    f"{pb * 1e6:>9.0f}us",
                    f"{pb / pa:>6.2f}x",
                    f"{(pb - pa) * 1e6:>7.0f}",
                ]
            print(" ".join(row))
        if unix:
            tcp, sock = remotes["tcp"], remotes["unix"]
            print(
                f"{'':>8} unix/tcp: p50 {percentile(sock, 0.5) / percentile(tcp, 0.5):.2f}x, "
                f"p99 {percentile(sock, 0.99) / percentile(tcp, 0.99):.2f}x"
            )


async def session(env: RemoteEnv, steps: int, timeout_s: float, latencies: list[float]) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await env.areset(seed=0)
            for i in range(steps):
                start = time.perf_counter()
                await env.astep(f"step {i}")
                latencies.append(time.perf_counter() - start)
        return True
    except Exception:  # noqa: BLE001 - a failed session is what this counts
        return False
    finally:
        await env.aclose()  # closing never raises: a gone server has nothing left to release


async def sessions(levels: list[int], delay_ms: float, steps: int, timeout_s: float) -> None:
    print(f"\nconcurrent sessions on one server process, env step = {delay_ms:g} ms wait, {steps} steps each")
    print(
        f"{'sessions':>9} {'success':>8} {'step p50':>9} {'p50/delay':>10} {'step p99':>9} {'p99/delay':>10} "
        f"{'wall':>7} {'server cpu':>11} {'client cpu':>11}"
    )
    best = None
    for level in levels:
        server = ServerProcess(delay_ms, max(levels))
        try:
            latencies: list[float] = []
            envs = [RemoteEnv(server.url, ENV_ID, timeout_s=timeout_s) for _ in range(level)]
            cpu0, client0, start = server.cpu_s(), time.process_time(), time.perf_counter()
            ok = await asyncio.gather(*(session(env, steps, timeout_s, latencies) for env in envs))
            wall, cpu, client = (
                time.perf_counter() - start,
                server.cpu_s() - cpu0,
                time.process_time() - client0,
            )
        finally:
            server.stop()
        rate = sum(ok) / level
        p50 = percentile(latencies, 0.5) * 1e3 if latencies else float("nan")
        p99 = percentile(latencies, 0.99) * 1e3 if latencies else float("nan")
        print(
            f"{level:>9} {rate:>8.1%} {p50:>7.1f}ms {p50 / delay_ms:>9.2f}x {p99:>7.1f}ms {p99 / delay_ms:>9.2f}x "
            f"{wall:>6.1f}s {cpu:>10.2f}s {client:>10.2f}s"
        )
        if rate >= 0.95:
            best = level
    print(f"\nlargest level at >= 95% success: {best} sessions (one server process)")
    print("(step latency under load includes the client: all its sessions share one Python process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="128,256,512,1024")
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--steps", type=int, default=500, help="sequential steps for the overhead figures")
    parser.add_argument("--episode-steps", type=int, default=5)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--unix", action="store_true", help="also measure the Unix-socket transport")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-unix", help=argparse.SUPPRESS)
    parser.add_argument("--max-sessions", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.serve_unix, args.delay_ms, args.max_sessions)
        return
    levels = [int(n) for n in args.levels.split(",") if n]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * max(levels, default=0) + 256)), hard))
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    asyncio.run(overhead(args.steps, args.delay_ms, args.unix))
    if levels:
        asyncio.run(sessions(levels, args.delay_ms, args.episode_steps, args.timeout_s))


if __name__ == "__main__":
    main()
