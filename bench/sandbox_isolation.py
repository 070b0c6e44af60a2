"""What the local sandbox's boundary costs: bubblewrap (namespaces, own uid, seccomp, read-only
root) against the same server and venv started as a plain child process, in the same run.

Alternates the two ``--n`` times each: cold start (process + kernel ready, then one ``1 + 1``)
and the execute round trip p50 over ``--cells`` cells.

Usage: ``python bench/sandbox_isolation.py [--n 8] [--cells 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentrl.sandbox import ServerSandbox
from agentrl.sandbox.interpreter import sandbox_venv
from agentrl.sandbox.isolation import SERVER_DIR
from agentrl.sandbox.local import LocalSandbox


class PlainChild(ServerSandbox):
    """The baseline: the sandbox's server and venv, no bwrap (the local backend before it)."""

    backend = "plain"

    async def _launch(self) -> Path:
        self.root = root = Path(tempfile.mkdtemp(prefix="agentrl-bench-"))
        shutil.copytree(SERVER_DIR, root / "server" / "agentrl_sandboxes")
        (root / "token").write_text(self.token)
        argv = [
            str(sandbox_venv() / "bin" / "python"), "-m", "agentrl_sandboxes.server",
            "--unix", str(root / "sandbox.sock"), "--workdir", str(root / "work"),
            "--statedir", str(root / "state"), "--token-file", str(root / "token"), "--exit-with-stdin",
        ]  # fmt: skip
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(root / "server")}
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        return root / "sandbox.sock"

    async def _server_gone(self) -> bool:
        return self.proc.returncode is not None

    async def _terminate(self) -> None:
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 3.0)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


async def one(cls, cells: int) -> tuple[float, float]:
    start = time.perf_counter()
    sb = await cls().start()
    try:
        await sb.run_code("1 + 1")
        cold = time.perf_counter() - start
        lat = []
        for _ in range(cells):
            t = time.perf_counter()
            await sb.run_code("1 + 1")
            lat.append(time.perf_counter() - t)
        return cold, statistics.median(lat)
    finally:
        await sb.close()


async def main(n: int, cells: int) -> None:
    sandbox_venv(print)  # built once, outside the timings
    runs: dict[str, list[tuple[float, float]]] = {"plain child": [], "bwrap (local)": []}
    for _ in range(n):
        runs["plain child"].append(await one(PlainChild, cells))
        runs["bwrap (local)"].append(await one(LocalSandbox, cells))
    base_cold = statistics.median(c for c, _ in runs["plain child"])
    base_exec = statistics.median(e for _, e in runs["plain child"])
    print(
        f"load average {os.getloadavg()[0]:.1f}, n={n}, {cells} cells each, python {sys.version.split()[0]}"
    )
    for name, xs in runs.items():
        cold = statistics.median(c for c, _ in xs)
        exe = statistics.median(e for _, e in xs)
        print(
            f"{name:<14} cold start p50 {cold * 1e3:7.0f} ms ({cold / base_cold:4.2f}x)   "
            f"execute p50 {exe * 1e3:6.2f} ms ({exe / base_exec:4.2f}x)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--cells", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.cells))
