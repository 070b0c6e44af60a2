"""One persistent IPython shell process (:mod:`agentrl_sandboxes.shell`) driven over pipes.

The shell process is forked from the sandbox's zygote (:mod:`agentrl_sandboxes.zygote`):
IPython, numpy, sympy and the display machinery are already imported, so a fresh kernel (a
start, a restart, a reset) is ready in milliseconds.

Execution semantics of :meth:`KernelSession.execute`:

* one cell at a time (an ``asyncio.Lock``); state persists between cells;
* the cell's stdout / stderr are the shell process's fd 1 / fd 2 (pipes), so ``print``,
  ``os.system`` and child processes are all captured, in order; the reply comes on its own pipe
  after the shell has flushed, and the pipes are read when it arrives, so every byte written
  during the cell belongs to it (output a leftover background process writes between cells is
  dropped). A cell that runs past :data:`OUTPUT_WATCH_DELAY` has its pipes read as they fill
  (streamed), so no amount of output blocks the kernel; a shorter one costs no wake-up per write;
* the reply carries ``execute_result`` → ``result`` (text/plain) and its image if any,
  ``display_data`` → ``display`` (PNG as base64, text types as text), ``error`` → ``error``
  (traceback without ANSI colour codes);
* at most ``max_output`` characters of stdout + stderr + result are kept (head kept, rest
  dropped, ``truncated=True``); the pipes are drained regardless, so megabytes of output cost
  time but not memory;
* past ``timeout`` the shell gets SIGINT (``KeyboardInterrupt`` in the cell, state kept); if it
  has not replied ``interrupt_grace`` seconds later it is restarted (state lost) — both report
  ``outcome="timeout"`` with ``state_kept`` telling which;
* if the shell process dies during the cell (``os._exit``, a signal, out of memory) a fresh one
  is started and the call reports ``outcome="crashed"``.

Latency: a trivial cell costs the shell ≈0.15-0.25 ms (IPython's ``run_cell``) plus one pipe hop
each way; a default ipykernel spends 4-7 ms per request in its messaging layer (measured in
sandboxes/README.md). Waiting for the reply is one future per cell, resolved by the reply pipe's
reader, the process-exit callback or the deadline timer, whichever comes first.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import re
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

from agentrl_sandboxes.messages import Display, ExecError, ExecResult
from agentrl_sandboxes.zygote import Forked, Zygote, kill_group

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "image/svg+xml", "application/json")
IMAGE_MIMES = ("image/png", "image/jpeg")
CHUNK = 1 << 16
OUTPUT_WATCH_DELAY = 0.001
"""Seconds a cell runs before the server watches its stdout / stderr pipes. A shorter cell's
output waits in the pipes and is read once, with the reply (a write into a watched pipe wakes the
server, which on a busy machine preempts the kernel mid-cell: ~80 µs per ``print``); a longer
cell's output is streamed, so one that writes more than a pipe holds waits at most this long."""


def _valid_unicode(reply: Any) -> Any:
    """``reply`` with every lone surrogate replaced by U+FFFD. User code can put one in any string
    (``raise ValueError(chr(0xD800))``, a ``__repr__``); JSON escapes it on the way here, but it
    cannot be encoded as UTF-8, so the ExecResult could not be sent (HTTP 500)."""
    text = json.dumps(reply, ensure_ascii=False).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return json.loads(text)


class KernelDied(Exception):
    """The shell process exited while we waited for it."""


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


class KernelSession:
    """Owns one shell process and its four pipes.

    Args:
        workdir: the shell's working directory.
        env: extra environment for the shell (HOME, MPLCONFIGDIR, …).
        interrupt_grace: seconds to wait for the shell after SIGINT before restarting it.
    """

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, interrupt_grace: float = 2.0):
        self.workdir = Path(workdir)
        self.env = env or {}
        self.interrupt_grace = interrupt_grace
        self.lock = asyncio.Lock()
        self.zygote = Zygote(self.workdir, self.env)
        self.proc: Forked | None = None
        self.executions = 0
        self.restarts = 0
        self._requests: asyncio.WriteTransport | None = None
        self._fds: list[int] = []
        self._decoders: dict[int, Any] = {}
        self._names: dict[int, str] = {}
        self._collector: _Collector | None = None
        self._reply_parts: list[bytes] = []
        self._replies: deque[dict] = deque()  # arrived while nobody waited
        self._waiter: asyncio.Future | None = None  # the reply (None: deadline) or KernelDied
        self._watching = False  # stdout / stderr readers registered (a long cell)

    # ---------------------------------------------------------------- lifecycle
    async def start(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            self.proc = await self.zygote.fork([out_w, err_w, req_r, rep_w])
        except BaseException:
            for fd in (out_r, err_r, req_w, rep_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, req_r, rep_w):
                os.close(fd)
        self._replies.clear()
        self._reply_parts = []
        self.proc.exited.add_done_callback(self._exited)
        self._names = {out_r: "stdout", err_r: "stderr", rep_r: "reply"}
        self._decoders = {
            fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in (out_r, err_r)
        }
        self._fds = [out_r, err_r, rep_r]
        for fd in self._fds:
            os.set_blocking(fd, False)
        loop.add_reader(rep_r, self._read, rep_r)  # stdout / stderr: only during a long cell
        self._requests, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(req_w, "wb"))
        try:
            reply = await self._reply(time.perf_counter() + timeout)
        except KernelDied:
            reply = None
        if reply is None or not reply.get("ready"):
            await self.stop()
            raise RuntimeError("the shell process did not start (see the server log)")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in self._fds:
            loop.remove_reader(fd)
            os.close(fd)
        self._fds = []
        self._watching = False
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if self.proc is not None:
            await kill_group(self.proc)
            self.proc = None

    async def close(self) -> None:
        """Stop the kernel and the zygote (server shutdown)."""
        await self.stop()
        await self.zygote.stop()

    async def restart(self) -> None:
        self.restarts += 1
        await self.stop()
        await self.start()

    # ---------------------------------------------------------------- pipes
    def _read(self, fd: int) -> None:
        """Read what ``fd`` has now (non-blocking); stdout/stderr go to the running cell, if any."""
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # EOF: the shell (and every child holding the pipe) is gone
                asyncio.get_running_loop().remove_reader(fd)
                return
            name = self._names[fd]
            if name == "reply":
                self._reply_parts.append(chunk)
                if b"\n" in chunk:  # a long reply (a big display) comes in parts: join once, at its end
                    lines = b"".join(self._reply_parts).split(b"\n")
                    self._reply_parts = [lines.pop()]
                    for line in lines:
                        self._deliver(line)
            else:
                text = self._decoders[fd].decode(chunk)
                if self._collector is not None:
                    self._collector.add_stream(name, text)
            if len(chunk) < CHUNK:  # a short read: the pipe holds nothing more now
                return

    def _deliver(self, line: bytes) -> None:
        """One reply line: to the call waiting for it, else kept for the next one."""
        try:
            reply = _valid_unicode(json.loads(line)) if b"\\u" in line else json.loads(line)
        except ValueError:  # user code wrote junk into the reply pipe: not a reply
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(reply)
        else:
            self._replies.append(reply)

    def _exited(self, exited: asyncio.Future) -> None:
        """The shell process is gone: the call waiting for its reply gets KernelDied."""
        current = self.proc is not None and exited is self.proc.exited
        if current and self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(KernelDied())

    async def _reply(self, deadline: float) -> dict | None:
        """The next reply, or None at the deadline; KernelDied if the shell exits first.

        One future per wait, resolved by whichever comes first: the reply pipe's reader, the
        process exit callback or the deadline's timer (no task, no queue hand-off)."""
        if self._replies:
            return self._replies.popleft()
        if self.proc.returncode is not None:
            raise KernelDied
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(max(0.0, deadline - time.perf_counter()), _resolve, waiter, None)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    # ---------------------------------------------------------------- execution
    async def execute(self, code: str, timeout: float, max_output: int) -> ExecResult:
        async with self.lock:
            if not await self.alive():
                await self.restart()
            self.executions += 1
            self._drain()  # output left by background processes between cells: dropped
            out = self._collector = _Collector(max_output)
            start = time.perf_counter()
            loop = asyncio.get_running_loop()
            watch = loop.call_later(OUTPUT_WATCH_DELAY, self._watch_output, loop, True)
            try:
                self._requests.write(json.dumps({"code": code}).encode() + b"\n")
                try:
                    reply = await self._reply(start + timeout)
                except KernelDied:
                    exit_code = self.proc.returncode
                    self._drain()
                    await self.restart()
                    return out.result(
                        "crashed", time.perf_counter() - start, state_kept=False, exit_code=exit_code
                    )
                if reply is not None:
                    return self._finish(out, reply, start, timed_out=False)
                # Past the limit: interrupt (KeyboardInterrupt in the cell), restart if that fails.
                os.kill(self.proc.pid, signal.SIGINT)
                try:
                    reply = await self._reply(time.perf_counter() + self.interrupt_grace)
                except KernelDied:
                    reply = None
                if reply is None:
                    self._drain()
                    await self.restart()
                    return out.result("timeout", time.perf_counter() - start, state_kept=False)
                return self._finish(out, reply, start, timed_out=True)
            finally:
                watch.cancel()
                self._watch_output(loop, False)
                self._collector = None

    def _watch_output(self, loop: asyncio.AbstractEventLoop, on: bool) -> None:
        """Stream stdout / stderr as they are written (a cell past OUTPUT_WATCH_DELAY), or stop."""
        if on != self._watching:
            self._watching = on
            for fd in self._fds[:2]:
                loop.add_reader(fd, self._read, fd) if on else loop.remove_reader(fd)

    def _drain(self) -> None:
        """Read what stdout / stderr hold now (into the running cell's output, if any)."""
        for fd in self._fds[:2]:
            self._read(fd)

    def _finish(self, out: _Collector, reply: dict, start: float, timed_out: bool) -> ExecResult:
        self._drain()  # everything the cell wrote is in the pipes by now
        try:
            for kind, content in reply.get("outputs", []):
                out.add(kind, content)
        except (TypeError, ValueError, AttributeError):  # the cell's code wrote a malformed reply
            out.error = ExecError(
                name="OutputError", value="the cell produced output the sandbox could not read"
            )
        outcome = "timeout" if timed_out else "error" if out.error else "ok"
        return out.result(outcome, time.perf_counter() - start)


class _Collector:
    """Accumulates one cell's streams and outputs into an ExecResult, with the output budget."""

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

    def add_stream(self, name: str, text: str) -> None:
        self.streams[name].append(self._take(text))

    def add(self, kind: str, content: dict[str, Any]) -> None:
        if kind in ("execute_result", "display_data"):
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

    def result(
        self, outcome: str, duration: float, state_kept: bool = True, exit_code: int | None = None
    ) -> ExecResult:
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
            exit_code=exit_code,
        )
