"""The ``local`` backend: the sandbox server as a child process (the embedded default).

Layout: one temporary folder per sandbox (``work/`` = the kernel's cwd, ``state/`` = HOME,
kernel sockets, logs, ``sandbox.sock`` = the server's socket), one process group, the limits of
:mod:`agentrl.sandbox.isolation` — **convenience isolation, not a security boundary**: the code
runs as your user and can read your files. Use ``backend="docker"`` for untrusted code.

The child holds the read end of a pipe as stdin and stops at EOF, so sandboxes do not outlive
the process that started them even if it is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from agentrl.sandbox.base import ServerSandbox
from agentrl.sandbox.isolation import CGroup, network_isolation_available, preexec, user_process_count
from agentrl.sandbox.limits import Limits

log = logging.getLogger(__name__)


class LocalSandbox(ServerSandbox):
    backend = "local"

    def __init__(self, limits: Limits | None = None):
        super().__init__(limits)
        self.root: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.cgroup: CGroup | None = None
        self.network_isolated = False

    async def _launch(self) -> Path:
        self.root = Path(tempfile.mkdtemp(prefix="agentrl-sandbox-"))
        sock = self.root / "sandbox.sock"
        want_netns = not self.limits.network
        self.network_isolated = want_netns and await asyncio.to_thread(network_isolation_available)
        if want_netns and not self.network_isolated:
            log.warning("local sandbox: this OS refused a network namespace; the sandbox HAS network access")
        self.cgroup = CGroup.create(self.limits)
        argv = [
            sys.executable, "-m", "agentrl_sandboxes.server",
            "--unix", str(sock),
            "--workdir", str(self.root / "work"),
            "--statedir", str(self.root / "state"),
            "--exit-with-stdin",
        ]  # fmt: skip
        with open(self.root / "server.log", "wb") as logfile:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=logfile,
                stderr=logfile,
                cwd=self.root,
                start_new_session=True,
                preexec_fn=preexec(self.limits, self.network_isolated, user_process_count(), self.cgroup),
            )
        return sock

    async def _server_gone(self) -> bool:
        return self.proc is None or self.proc.returncode is not None

    def _log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except (OSError, TypeError):
            return ""

    def info(self) -> dict:
        return {
            **super().info(),
            "pid": self.proc.pid if self.proc else None,
            "root": str(self.root),
            "network_isolated": self.network_isolated,
            "cgroup": [str(d) for d in self.cgroup.dirs] if self.cgroup else None,
            "security_boundary": False,
        }

    async def _terminate(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.stdin.close()  # EOF: the server shuts its kernel down and kills what it adopted
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except TimeoutError:
                pass
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.returncode is None:
                await proc.wait()
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
