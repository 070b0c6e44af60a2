"""OS-level containment for the local backend: rlimits, a network namespace, a cgroup.

This is *convenience isolation*, not a security boundary: code in a local sandbox runs as the
same user as the host process and can read whatever that user can read. Use the docker backend
for untrusted code that must not see the host.

What is applied, in the child before ``exec`` (``preexec``):

* ``setrlimit``: RLIMIT_AS (memory, per process), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE=0 and,
  for non-root users, RLIMIT_NPROC (the kernel does not enforce it for root);
* ``unshare(CLONE_NEWNET)`` (root) or ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` with an identity
  uid/gid map (unprivileged users where user namespaces are enabled): the sandbox sees only a
  down loopback device, so no connection leaves it. Unix sockets on the filesystem still work,
  which is how the host talks to the server. :func:`network_isolation_available` probes this once;
  where it fails the sandbox runs with the host's network and says so in ``info()``;

and from the parent, where the cgroup tree is writable (root on cgroup v1 or v2):

* a ``pids`` cgroup with ``pids.max`` (stops fork bombs, also for root) and, where the memory
  controller is writable, ``memory.max`` / ``memory.limit_in_bytes`` for the whole sandbox;
  :meth:`CGroup.kill_all` ends every process in it on close, even ones that escaped the process group.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from agentrl.sandbox.limits import Limits

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def _isolate_network() -> None:
    """Move the calling process into a fresh network namespace (see module docstring)."""
    if os.geteuid() == 0:
        _unshare(CLONE_NEWNET)
        return
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


@functools.cache
def network_isolation_available() -> bool:
    """Whether this machine lets us create a network namespace (probed once, in a child)."""
    probe = "from agentrl.sandbox.isolation import _isolate_network; _isolate_network()"
    try:
        return (
            subprocess.run(
                [sys.executable, "-c", probe], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def preexec(limits: Limits, isolate_network: bool, nproc_base: int, cgroup: CGroup | None):
    """The function run in the child between fork and exec."""

    def setup() -> None:
        if cgroup is not None:
            cgroup.add(os.getpid())
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        mem = limits.memory_mb * MB
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        fsize = limits.file_size_mb * MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.cpu_time_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_time_s, limits.cpu_time_s + 5))
        if os.geteuid() != 0:
            # RLIMIT_NPROC counts all processes of the user, so allow what it already runs.
            n = nproc_base + limits.pids
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        if isolate_network:
            _isolate_network()

    return setup


def user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                count += os.stat(f"/proc/{name}").st_uid == uid
            except OSError:
                pass
    return count


class CGroup:
    """A per-sandbox cgroup (v2 unified, or v1 ``pids`` + ``memory`` hierarchies), if writable.

    ``CGroup.create(limits)`` returns None where the tree is not writable (not root, or a
    read-only cgroupfs); the caller then relies on rlimits alone.
    """

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, limits: Limits) -> CGroup | None:
        name = f"agentrl-{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2
                parent = CGROUP_ROOT / _own_cgroup_v2()
                controllers = (parent / "cgroup.subtree_control").read_text().split()
                if "pids" not in controllers:
                    return None
                d = parent / name
                d.mkdir()
                made.append(d)
                (d / "pids.max").write_text(str(limits.pids))
                if "memory" in controllers:
                    (d / "memory.max").write_text(str(limits.memory_mb * MB))
                    (d / "memory.swap.max").write_text("0")
            else:  # v1
                pids = CGROUP_ROOT / "pids" / name
                pids.mkdir()
                made.append(pids)
                (pids / "pids.max").write_text(str(limits.pids))
                memory = CGROUP_ROOT / "memory" / name
                try:
                    memory.mkdir()
                    made.append(memory)
                    (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MB))
                except OSError:
                    pass
        except OSError:
            for d in reversed(made):
                d.rmdir()
            return None
        return cls(made)

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs:
            try:
                out.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(out)

    def kill_all(self) -> None:
        for _ in range(50):
            victims = self.pids()
            if not victims:
                return
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy until the killed processes are reaped
                    time.sleep(0.01)


def _own_cgroup_v2() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].lstrip("/")
    return ""
