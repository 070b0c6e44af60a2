"""Process-tree housekeeping for the in-sandbox server (Linux ``/proc``).

The server makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): every process
that user code starts and abandons (double fork, ``setsid``, ``nohup … &``) is re-parented to the
server instead of to init. So "everything user code left running" is exactly "every descendant of
the server except the kernel", and :func:`kill_descendants` removes it on reset without needing
a container or a cgroup.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux >= 3.4). Returns False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """pid -> ppid for every live process (field 4 of /proc/PID/stat, after the ``(comm)``)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        out[int(name)] = int(fields[1])
    return out


def descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (children first, then theirs)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = [], [root]
    while frontier:
        nxt = [c for p in frontier for c in children.get(p, ())]
        found += nxt
        frontier = nxt
    return found


def kill_descendants(root: int, keep: set[int] = frozenset(), patience: float = 5.0) -> None:
    """SIGKILL every descendant of ``root`` except ``keep`` and their subtrees; reap the zombies.

    Repeats until none is left, for at most ``patience`` seconds: a fork bomb may add processes
    while we kill, and a killed process stays in the tree until it has exited and been reaped
    (on a loaded machine that takes a while).
    """
    deadline = time.monotonic() + patience
    while True:
        spared = set(keep)
        for pid in keep:
            spared.update(descendants(pid))
        victims = [p for p in descendants(root) if p not in spared]
        if not victims or time.monotonic() > deadline:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_orphans(root, keep)
        time.sleep(0.001)  # let the killed ones exit before looking again


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything below it (its descendants first seen, then ``pid``)."""
    for victim in [*descendants(pid), pid]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def reap_orphans(root: int, keep: set[int] = frozenset()) -> None:
    """``waitpid`` the direct zombie children of ``root`` that nobody else waits for."""
    for pid, ppid in _parents().items():
        if ppid != root or pid in keep:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rfind(b")") + 2 :].split()[0] == b"Z":
                os.waitpid(pid, os.WNOHANG)
        except (OSError, ChildProcessError):
            pass
