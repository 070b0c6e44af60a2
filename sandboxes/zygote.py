"""The zygote: a pre-imported interpreter that forks a fresh kernel process per episode.

Starting a kernel from nothing costs a Python start plus IPython (and, at the first cell that
needs them, numpy, sympy and matplotlib): about half a second per reset. The zygote pays that
once per sandbox: it imports :data:`PRELOAD`, builds the :class:`~agentrl_sandboxes.shell.SandboxShell`
(IPython, its display hook and publisher), and never runs user code. Each kernel is a fork of
it, so every episode starts from the same pristine copy — its variables, imported modules,
monkey-patches, cwd and environment die with its process — in a few milliseconds.

Run by :class:`Zygote` (the server side, below) as ``python -m agentrl_sandboxes.zygote FD``,
``FD`` being its end of a Unix socket pair. Protocol, one message each way per kernel:

* server → zygote: ``b"fork"`` with four file descriptors (``SCM_RIGHTS``): the kernel's stdout,
  stderr, request and reply pipe ends (see :mod:`agentrl_sandboxes.shell`);
* zygote → server: the kernel's pid (ASCII), once it exists. ``b"ready"`` once at start-up.

The zygote forks twice (zygote → a short-lived child → the kernel), so the kernel is
re-parented to the server, a child subreaper: the server waits for it (``pidfd``), and a reset
kills it with everything it started (:mod:`agentrl_sandboxes.procs`). The kernel starts a new
session, keeps only fds 0-2 and its two channels, and reseeds numpy's global generator
(Python's ``random`` reseeds itself after a fork). The zygote is not dumpable, so code in a kernel
(same uid) can neither read nor write its memory through ``/proc`` or ``ptrace``; if that code
kills it anyway, the server starts a new one (a slow reset, nothing shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import os
import platform
import signal
import socket
import sys
import time
from pathlib import Path

PRELOAD = ("numpy", "numpy.random", "sympy", "matplotlib_inline.backend_inline")
"""Imported before the first fork (whichever the interpreter has): `import` in a cell is then a
dictionary look-up."""
PR_SET_DUMPABLE = 4
MAX_FDS = 4


# ---------------------------------------------------------------------------- server side
class Forked:
    """A kernel the zygote forked: the server's child (subreaper), watched through a pidfd.

    Quacks like the part of ``asyncio.subprocess.Process`` the server uses: ``pid``,
    ``returncode`` (negative for a signal) and ``await wait()``.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone and reaped
            self._pidfd = None
            self._finish(-signal.SIGKILL)
            return
        self._loop.add_reader(self._pidfd, self._exited)

    def _exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._reap(time.monotonic() + 1.0)

    def _reap(self, deadline: float) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            if time.monotonic() < deadline:  # still the zygote's middle child's, for a moment
                self._loop.call_later(0.001, self._reap, deadline)
            else:  # reaped elsewhere: only a kill does that
                self._finish(-signal.SIGKILL)
            return
        self._finish(os.waitstatus_to_exitcode(status))

    def _finish(self, code: int) -> None:
        self.returncode = code
        self._done.set_result(code)

    @property
    def exited(self) -> asyncio.Future:
        """Resolved with the exit code when the process is gone (for done callbacks)."""
        return self._done

    async def wait(self) -> int:
        return await asyncio.shield(self._done)


class Zygote:
    """Server side: starts the zygote process and asks it for kernels."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float = 120.0) -> None:
        await self.stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentrl_sandboxes.zygote", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                cwd=self.workdir,
                env={**os.environ, **self.env},
                start_new_session=True,  # user code's killpg(0) hits its kernel, not the zygote
            )  # fmt: skip
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        try:
            ready = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(ours, 16), timeout)
        except TimeoutError:
            ready = b""
        if ready != b"ready":
            await self.stop()
            raise RuntimeError("the zygote did not start (see the server log)")

    async def fork(self, fds: list[int]) -> Forked:
        """A fresh kernel on ``fds`` (stdout, stderr, request, reply); the caller closes them."""
        async with self._lock:
            for attempt in range(2):  # a zygote that died (killed by user code) is replaced once
                if attempt or not self.alive():
                    await self.start()
                try:
                    socket.send_fds(self._sock, [b"fork"], fds)
                    pid = int(await asyncio.get_running_loop().sock_recv(self._sock, 32) or 0)
                except OSError:
                    continue
                if pid:
                    return Forked(pid)
            raise RuntimeError("the zygote could not fork a kernel (see the server log)")

    async def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # EOF: the zygote exits
            self._sock = None
        if self.proc is not None:
            await kill_group(self.proc)
            self.proc = None


async def kill_group(proc) -> None:
    """SIGKILL the process group ``proc`` leads (if it still runs) and reap ``proc``."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


# ---------------------------------------------------------------------------- zygote side
def _kernel(shell, fds: list[int], control: socket.socket) -> None:
    """In the forked kernel: own session, only its own fds, then serve cells until EOF."""
    from agentrl_sandboxes import shell as shell_module

    out, err, request, reply = fds
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # user code waits for its own children
    os.setsid()
    control.close()
    os.dup2(out, 1)
    os.dup2(err, 2)
    keep = {0, 1, 2, request, reply}
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own fd, already closed
                pass
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc files, as a fresh process
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed()  # a copied generator would repeat across episodes
    shell_module.serve(shell, request, reply)


# clone(2) with CLONE_PARENT: the kernel becomes the server's child (its sibling) in one fork
CLONE_PARENT = 0x00008000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())


def _fork_sibling() -> int:
    """``os.fork()``, but the child's parent is the zygote's parent (the server).

    A raw ``clone(CLONE_PARENT | SIGCHLD)`` with Python's own fork bookkeeping around it (the
    zygote has one thread, so the C library's fork handlers have nothing to do). Where the
    syscall number is unknown: fork twice and let the middle process exit (the server is the
    subreaper the kernel then goes to: slower, a second copy of the page tables).
    """
    if SYS_CLONE is None:
        return _fork_twice()
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = libc.syscall(SYS_CLONE, CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "clone(CLONE_PARENT)")
    return pid


def _fork_twice() -> int:
    """Fork, fork again, and let the middle process exit: the grandchild goes to the subreaper."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(r)
        pid = os.fork()
        if pid == 0:
            os.close(w)
            return 0
        os.write(w, str(pid).encode())
        os._exit(0)
    os.close(w)
    with open(r, "rb") as pipe:
        return int(pipe.read() or 0)


def _fork_kernel(shell, fds: list[int], control: socket.socket) -> int:
    """Fork a kernel as the server's child; its pid."""
    pid = _fork_sibling()
    if pid == 0:
        code = 0
        try:
            _kernel(shell, fds, control)
        except BaseException:  # noqa: BLE001 - the kernel's end, whatever it was
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def main(control_fd: int) -> None:
    from agentrl_sandboxes import shell as shell_module

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # middle children reap themselves
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    control = socket.socket(fileno=control_fd)
    os.set_inheritable(control_fd, False)
    shell = shell_module.make_shell()  # first: the inline backend hooks into a running shell
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    gc.freeze()  # the collector never touches these objects: the kernels share their pages
    control.send(b"ready")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 16, MAX_FDS)
        except OSError:
            return
        if not msg:  # the server closed its end
            return
        try:
            pid = _fork_kernel(shell, fds, control) if len(fds) == MAX_FDS else 0
        except OSError as exc:  # EAGAIN at the pids limit: no kernel this time, the zygote stays
            print(f"zygote: fork failed: {exc}", file=sys.stderr, flush=True)
            pid = 0
        finally:
            for fd in fds:
                os.close(fd)
        control.send(str(pid).encode())


if __name__ == "__main__":
    main(int(sys.argv[1]))
