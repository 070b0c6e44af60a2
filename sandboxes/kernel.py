"""One persistent IPython kernel (ipykernel) driven through jupyter_client over Unix sockets.

The kernel talks the Jupyter messaging protocol over the IPC transport (five Unix sockets in a
private folder), so it works inside a container or network namespace with no network at all.

Execution semantics of :meth:`KernelSession.execute`:

* one cell at a time (an ``asyncio.Lock``); state persists between cells;
* outputs are gathered from IOPub until the kernel reports ``idle`` for this request: ``stream``
  → stdout/stderr, ``execute_result`` → ``result`` (text/plain) and its image if any,
  ``display_data`` → ``display`` (PNG as base64, text types as text), ``error`` → ``error``
  (traceback without ANSI colour codes);
* at most ``max_output`` characters of stdout + stderr + result are kept (head kept, rest
  dropped, ``truncated=True``); the kernel is drained regardless, so megabytes of output cost
  time but not memory;
* past ``timeout`` the kernel gets SIGINT (``KeyboardInterrupt`` in the cell, state kept); if it
  is not idle ``interrupt_grace`` seconds later it is restarted (state lost) — both report
  ``outcome="timeout"`` with ``state_kept`` telling which;
* if the kernel process dies during the cell (``os._exit``, a signal, out of memory) a fresh
  kernel is started and the call reports ``outcome="crashed"``.

Latency: the kernel is launched with IPython history off and ``Kernel._execute_sleep=0`` and
messages are unsigned (the sockets are private to the sandbox, and the only other code that
could reach them is the user code the kernel runs anyway), which takes roughly 1.5-2 ms off each
round trip of a default kernel (see sandboxes/README.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
from agentrl_sandboxes.messages import Display, ExecError, ExecResult
from jupyter_client.manager import AsyncKernelManager

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml", "application/json")
IMAGE_MIMES = ("image/png", "image/jpeg")

KERNEL_ARGS = [
    "--HistoryManager.enabled=False",
    "--Kernel._execute_sleep=0",
    "--InteractiveShell.colors=nocolor",
]


class KernelDied(Exception):
    """The kernel process exited while we waited for it."""


class KernelSession:
    """Owns one ipykernel process and a connected async client.

    Args:
        workdir: the kernel's working directory.
        runtime_dir: a private folder for the connection file and the IPC sockets.
        env: extra environment for the kernel (HOME, MPLCONFIGDIR, …).
        capture_fd_output: let ipykernel capture fd 1/2 (output of ``os.system`` and child
            processes). Costs about 0.5 ms per call; on by default because agents do use it.
        interrupt_grace: seconds to wait for the kernel after SIGINT before restarting it.
    """

    def __init__(
        self,
        workdir: Path,
        runtime_dir: Path,
        env: dict[str, str] | None = None,
        capture_fd_output: bool = True,
        interrupt_grace: float = 2.0,
    ):
        self.workdir = Path(workdir)
        self.runtime_dir = Path(runtime_dir)
        self.env = env or {}
        self.args = KERNEL_ARGS + [f"--IPKernelApp.capture_fd_output={capture_fd_output}"]
        self.interrupt_grace = interrupt_grace
        self.lock = asyncio.Lock()
        self.km: AsyncKernelManager | None = None
        self.kc = None
        self.executions = 0
        self.restarts = 0
        self._generation = 0

    # ---------------------------------------------------------------- lifecycle
    async def start(self, timeout: float = 60.0) -> None:
        self._generation += 1
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        km = AsyncKernelManager(
            transport="ipc",
            ip=str(self.runtime_dir / f"k{self._generation}"),
            connection_file=str(self.runtime_dir / f"kernel-{self._generation}.json"),
        )
        km.session.key = b""  # unsigned: see module docstring
        log = open(self.runtime_dir / "kernel.log", "ab")
        await km.start_kernel(
            extra_arguments=self.args,
            cwd=str(self.workdir),
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
        )
        log.close()
        kc = km.client()
        kc.session.key = b""
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=timeout)
        except RuntimeError:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            raise
        self.km, self.kc = km, kc
        self._shell = zmq.Socket.shadow(kc.shell_channel.socket.underlying)

    @property
    def pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return process.pid if process is not None else None

    async def alive(self) -> bool:
        return self.km is not None and await self.km.is_alive()

    async def stop(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            try:
                await self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001 - a dead kernel may fail to shut down cleanly
                pass
            self.km.cleanup_resources()
        self.km = self.kc = None

    async def restart(self) -> None:
        self.restarts += 1
        await self.stop()
        await self.start()

    # ---------------------------------------------------------------- execution
    async def execute(self, code: str, timeout: float, max_output: int) -> ExecResult:
        async with self.lock:
            if not await self.alive():
                await self.restart()
            self.executions += 1
            out = _Collector(max_output)
            start = time.perf_counter()
            msg_id = self.kc.execute(code, store_history=True, allow_stdin=False)
            try:
                finished = await self._collect(msg_id, out, deadline=start + timeout)
            except KernelDied:
                await self.restart()
                return out.result("crashed", time.perf_counter() - start, state_kept=False)
            if finished:
                return out.result("error" if out.error else "ok", time.perf_counter() - start)
            # Past the limit: interrupt (KeyboardInterrupt in the cell), restart if that fails.
            await self.km.interrupt_kernel()
            try:
                kept = await self._collect(msg_id, out, deadline=time.perf_counter() + self.interrupt_grace)
            except KernelDied:
                kept = False
            if not kept:
                await self.restart()
            return out.result("timeout", time.perf_counter() - start, state_kept=kept)

    async def _collect(self, msg_id: str, out: _Collector, deadline: float) -> bool:
        """Read IOPub for ``msg_id`` until idle (True) or the deadline (False)."""
        kc = self.kc
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            try:
                msg = await kc.get_iopub_msg(timeout=min(remaining, 0.5))
            except Empty:
                if not await self.km.is_alive():
                    raise KernelDied from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status":
                if content["execution_state"] == "idle":
                    self._drain_shell()
                    return True
            else:
                out.add(kind, content)

    def _drain_shell(self) -> None:
        """Drop execute replies (everything we need came on IOPub) so they do not pile up."""
        while self._shell.poll(0):
            self._shell.recv_multipart()


class _Collector:
    """Accumulates one cell's IOPub messages into an ExecResult, with the output budget."""

    def __init__(self, max_output: int):
        self.budget = max_output
        self.streams = {"stdout": [], "stderr": []}
        self.result_text: str | None = None
        self.display: list[Display] = []
        self.error: ExecError | None = None
        self.truncated = False
        self.execution_count: int | None = None

    def _take(self, text: str) -> str:
        if len(text) <= self.budget:
            self.budget -= len(text)
            return text
        self.truncated = True
        kept, self.budget = text[: self.budget], 0
        return kept

    def add(self, kind: str, content: dict[str, Any]) -> None:
        if kind == "stream":
            self.streams.get(content.get("name"), self.streams["stdout"]).append(self._take(content["text"]))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            if kind == "execute_result":
                self.execution_count = content.get("execution_count")
                self.result_text = self._take(data.get("text/plain", ""))
            for mime in IMAGE_MIMES:
                if mime in data:
                    self.display.append(Display(mime=mime, data=data[mime].strip()))
                    break
            else:
                if kind == "display_data":
                    mime = next((m for m in TEXT_MIMES if m in data), None)
                    if mime is not None:
                        text = data[mime] if isinstance(data[mime], str) else str(data[mime])
                        self.display.append(Display(mime=mime, data=self._take(text)))
        elif kind == "error":
            self.error = ExecError(
                name=content.get("ename", "Error"),
                value=ANSI.sub("", content.get("evalue", "")),
                traceback=[ANSI.sub("", line) for line in content.get("traceback", [])],
            )

    def result(self, outcome: str, duration: float, state_kept: bool = True) -> ExecResult:
        return ExecResult(
            outcome=outcome,
            stdout="".join(self.streams["stdout"]),
            stderr="".join(self.streams["stderr"]),
            result=self.result_text,
            display=self.display,
            error=self.error,
            duration=duration,
            truncated=self.truncated,
            execution_count=self.execution_count,
            state_kept=state_kept,
        )
