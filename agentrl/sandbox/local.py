"""The ``local`` backend: the sandbox server as a child process under bubblewrap (the embedded default).

Layout: one temporary folder per sandbox on the host — ``work/`` (mounted at ``/work``: the
kernel's cwd, the only host folder the sandbox can write), ``run/`` (``/run/agentrl``: the
server's socket and its one-time token file), ``etc/`` (the sandbox's ``passwd``/``group``),
``server.log`` — plus the namespaces, uid, seccomp filter, rlimits and cgroup of
:mod:`agentrl.sandbox.isolation`, and its own interpreter (:mod:`agentrl.sandbox.interpreter`:
no project or task packages). Inside, the sandbox sees the same paths as a docker sandbox.

The child holds the read end of a pipe as stdin and stops at EOF (and bwrap's
``--die-with-parent``), so sandboxes do not outlive the process that started them even if it is
killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import weakref
from pathlib import Path

from agentrl.sandbox import isolation
from agentrl.sandbox.base import ServerSandbox
from agentrl.sandbox.interpreter import base_prefix, sandbox_venv
from agentrl.sandbox.isolation import CGroup, preexec
from agentrl.sandbox.limits import Limits

log = logging.getLogger(__name__)


class LocalSandbox(ServerSandbox):
    backend = "local"

    def __init__(self, limits: Limits | None = None):
        super().__init__(limits)
        self.root: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.cgroup: CGroup | None = None
        self.uid = isolation.sandbox_uid()
        self.venv: Path | None = None
        self.seccomp = False
        self._pgid: list[int] = []  # the server's process group, once started
        self._cleanup: weakref.finalize | None = None

    async def start(self) -> LocalSandbox:
        # building the venv (once per machine) is not part of the start-up deadline
        self.venv = await asyncio.to_thread(sandbox_venv)
        return await super().start()

    async def _launch(self) -> Path:
        self.root = root = Path(tempfile.mkdtemp(prefix="agentrl-sandbox-"))
        self.cgroup = CGroup.create(self.limits)
        # runs once: from _terminate, or at interpreter exit / garbage collection if never closed
        self._cleanup = weakref.finalize(self, _cleanup, self._pgid, self.cgroup, root)
        isolation.prepare_root(root, self.uid, self.token)
        program = isolation.seccomp_program()
        self.seccomp = program is not None
        seccomp_r = None
        if program is None:
            log.warning("local sandbox: no seccomp filter for this architecture")
        else:
            seccomp_r, seccomp_w = os.pipe()  # the program (< 1 KiB) fits in the pipe buffer
            os.write(seccomp_w, program)
            os.close(seccomp_w)
        server_args = [
            "--unix", f"{isolation.SOCKDIR}/sandbox.sock",
            "--workdir", isolation.WORKDIR,
            "--statedir", isolation.STATEDIR,
            "--scratch", "/tmp",
            "--token-file", f"{isolation.SOCKDIR}/token",
            "--exit-with-stdin",
        ]  # fmt: skip
        argv = isolation.bwrap_argv(root, self.venv, base_prefix(), self.limits, seccomp_r, server_args)
        try:
            with open(root / "server.log", "wb") as logfile:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=logfile,
                    stderr=logfile,
                    cwd="/",
                    env={},  # bwrap's own environment shows in the sandbox as /proc/1/environ
                    start_new_session=True,
                    pass_fds=[seccomp_r] if seccomp_r is not None else [],
                    preexec_fn=preexec(self.limits, self.uid, self.cgroup),
                )
            self._pgid.append(self.proc.pid)
        finally:
            if seccomp_r is not None:
                os.close(seccomp_r)
        return root / "run" / "sandbox.sock"

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
            "uid": self.uid,
            "interpreter": str(self.venv),
            "network_isolated": not self.limits.network,
            "seccomp": self.seccomp,
            "cgroup": [str(d) for d in self.cgroup.dirs] if self.cgroup else None,
            "security_boundary": True,
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
            except (ProcessLookupError, PermissionError):
                pass
            if proc.returncode is None:
                await proc.wait()
            self._pgid.clear()  # reaped: its id may be reused
        if self._cleanup is not None:
            try:
                await asyncio.to_thread(self._cleanup)
            except RuntimeError:  # interpreter exit: the executors are shut down, clean up inline
                self._cleanup()


def _cleanup(pgid: list[int], cgroup: CGroup | None, root: Path) -> None:
    """Kill the server's process group and cgroup, remove the sandbox folder (blocking)."""
    for pid in pgid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if cgroup is not None:
        cgroup.remove()
    shutil.rmtree(root, ignore_errors=True)
