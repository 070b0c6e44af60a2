"""OS-level containment for the local backend: bubblewrap namespaces, an unprivileged uid,
no_new_privs, a seccomp filter, rlimits and a cgroup.

The local sandbox is a boundary, built from what Linux gives without Docker. The server runs
under ``bwrap`` (Debian package ``bubblewrap``, :func:`bwrap_argv`) in its own user, mount, pid,
ipc, uts, cgroup and network namespaces, and sees only:

* ``/usr`` (and the ``/bin``, ``/lib``… links into it) and the base Python install, read-only,
  with every ``site-packages`` / ``dist-packages`` folder outside the sandbox's own venv hidden
  under an empty tmpfs; a handful of ``/etc`` files (dynamic loader, alternatives, time zone,
  CA certificates) and its own ``passwd``/``group``;
* its interpreter, ``/opt/venv`` (:mod:`agentrl.sandbox.interpreter`: no task packages), and the
  server package at ``/opt/agentrl``, read-only;
* ``/work`` (the work dir, the only host folder it may write), ``/run/agentrl`` (its socket),
  a private size-limited ``/tmp`` with its home ``/tmp/state/home``, a fresh ``/proc`` of its own
  pid namespace and a minimal ``/dev``; everything else, ``/`` included, is read-only;
* a clean environment (``--clearenv``: no host variable, no API key), no network but a loopback
  (unless ``limits.network``), uid 1000 inside, no capabilities, no further user namespaces.

Before ``exec`` of bwrap (:func:`preexec`) the child joins the sandbox's cgroup, sets rlimits
(RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NPROC), sets ``no_new_privs`` and —
when the host process is root — drops to a fresh unprivileged host uid/gid of its own
(:func:`sandbox_uid`), so the sandbox owns nothing on the host and RLIMIT_NPROC counts its
processes only. bwrap then installs :func:`seccomp_program` (x86-64): namespace, mount, ptrace,
kernel-module, keyring, bpf, perf, userfaultfd, io_uring, clock and reboot calls fail with
EPERM, ``clone`` with a namespace flag too, and ``clone3`` with ENOSYS (libc falls back to
``clone``, whose flags the filter can read).

From the parent, where the cgroup tree is writable (root on cgroup v1 or v2): a ``pids`` cgroup
with ``pids.max`` and, where the memory controller is writable, ``memory.max`` /
``memory.limit_in_bytes`` for the whole sandbox; :meth:`CGroup.kill_all` ends every process in it
on close.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import secrets
import shutil
import signal
import struct
import time
import uuid
from pathlib import Path

import agentrl_sandboxes

from agentrl.sandbox.errors import SandboxUnavailable
from agentrl.sandbox.limits import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024
PR_SET_NO_NEW_PRIVS = 38
SERVER_DIR = Path(agentrl_sandboxes.__file__).parent

# Paths inside the sandbox (the same as in the docker image).
VENV = "/opt/venv"
SERVER_PARENT = "/opt/agentrl"
WORKDIR = "/work"
SOCKDIR = "/run/agentrl"
STATEDIR = "/tmp/state"
INSIDE_UID = 1000

# /etc files a Python kernel needs (loader cache, alternatives symlinks for /usr/bin tools, time
# zone, CA bundle for the network=True case); nothing else of the host's /etc is visible.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "ssl", "mime.types")
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def bwrap_path() -> str:
    """The bwrap executable, or SandboxUnavailable that says how to install it."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "the local sandbox needs bubblewrap (the `bwrap` command): `apt-get install -y bubblewrap` "
            "(Debian/Ubuntu; scripts/setup.sh does it as root), `dnf install bubblewrap`, or use backend='docker'"
        )
    return path


def sandbox_uid() -> int:
    """A fresh host uid (and gid) for one sandbox when the host runs as root, else the caller's uid.

    Drawn at random from a range no distribution allocates (1.5e9 + 2**24), so it owns no host
    file and shares RLIMIT_NPROC with no other process.
    """
    if os.geteuid() != 0:
        return os.geteuid()
    return 1_500_000_000 + secrets.randbelow(1 << 24)


def _site_dirs(prefix: Path) -> list[Path]:
    return [
        p
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages")
        for p in prefix.glob(pattern)
    ]


def bwrap_argv(
    root: Path, venv: Path, base: Path, limits: Limits, seccomp_fd: int | None, server_args: list[str]
) -> list[str]:
    """The bwrap command line that runs the server in a sandbox laid out over ``root``
    (``root/work``, ``root/run``, ``root/etc/{passwd,group}``, ``root/server``: made by
    :func:`prepare_root`); ``venv`` is the sandbox's interpreter, ``base`` the prefix of the
    Python it was made from. bwrap runs as the sandbox's uid: every source must be reachable by it."""
    argv = [
        bwrap_path(),
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
    ]
    if limits.network:
        argv.append("--share-net")
    argv += ["--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID), "--hostname", "sandbox"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{name}"]
    if not base.is_relative_to("/usr"):
        argv += ["--ro-bind", str(base), str(base)]
    hidden = _site_dirs(base) + _site_dirs(Path("/usr")) + _site_dirs(Path("/usr/local"))
    for folder in sorted(set(hidden)):
        argv += ["--tmpfs", str(folder)]
    argv += ["--dir", "/etc"]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ("passwd", "group"):
        argv += ["--ro-bind", str(root / "etc" / name), f"/etc/{name}"]
    argv += ["--ro-bind", str(venv), VENV, "--ro-bind", str(root / "server"), SERVER_PARENT]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(limits.disk_mb * MB), "--tmpfs", "/tmp"]
    argv += ["--bind", str(root / "work"), WORKDIR, "--bind", str(root / "run"), SOCKDIR]
    argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
    env = {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": SERVER_PARENT,
        "HOME": f"{STATEDIR}/home",
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in env.items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--", f"{VENV}/bin/python", "-m", "agentrl_sandboxes.server", *server_args]


def prepare_root(root: Path, uid: int, token: str) -> None:
    """Fill a fresh sandbox folder: ``work/`` and ``run/`` (the sandbox's, mode 0700) with the
    one-time ``run/token`` (0600), ``server/`` (a copy of the server package: the checkout may
    sit where the sandbox's uid cannot reach), ``etc/passwd`` and ``group`` (the sandbox user,
    so ``getpass`` and ``~`` resolve inside). ``root`` itself becomes 0711: walkable by the
    sandbox's bwrap, not listable."""
    os.chmod(root, 0o711)
    for name in ("work", "run"):
        (root / name).mkdir(mode=0o700)
        os.chown(root / name, uid, uid)  # a no-op as a normal user: the uid is ours
    token_file = root / "run" / "token"
    token_file.write_text(token)
    os.chmod(token_file, 0o600)
    os.chown(token_file, uid, uid)
    shutil.copytree(
        SERVER_DIR,
        root / "server" / "agentrl_sandboxes",
        ignore=shutil.ignore_patterns("__pycache__", "*.md", "Dockerfile"),
    )
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        f"root:x:0:0::/:/usr/sbin/nologin\nsandbox:x:{INSIDE_UID}:{INSIDE_UID}::{STATEDIR}/home:/bin/sh\n"
        "nobody:x:65534:65534::/:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nsandbox:x:{INSIDE_UID}:\nnogroup:x:65534:\n")


# ---------------------------------------------------------------------------- seccomp
# x86-64 syscall numbers (asm/unistd_64.h) that fail with EPERM inside a sandbox.
BLOCKED_X86_64 = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "vhangup": 153, "pivot_root": 155, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "clock_settime": 227,
    "add_key": 248, "request_key": 249, "keyctl": 250, "kexec_load": 246, "unshare": 272,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}  # fmt: skip
CLONE_X86_64, CLONE3_X86_64 = 56, 435
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# classic BPF (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
EPERM, ENOSYS = 1, 38
# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6]  (args[0] low word at 16, little-endian)
_NR, _ARCH, _ARG0_LO = 0, 4, 16


def seccomp_program() -> bytes | None:
    """The sandbox's seccomp filter as a compiled cBPF program (what ``bwrap --seccomp`` reads),
    or None on an architecture it does not know (only x86-64 is written out)."""
    if platform.machine() != "x86_64":
        return None

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("<HBBI", code, jt, jf, k)

    deny = SECCOMP_RET_ERRNO | EPERM
    blocked = sorted(BLOCKED_X86_64.values())
    n = len(blocked)
    prog = [
        op(_LD_W_ABS, _ARCH),
        op(_JEQ_K, AUDIT_ARCH_X86_64, jt=1),
        op(_RET_K, SECCOMP_RET_KILL_PROCESS),  # another ABI (i386): its numbers differ
        op(_LD_W_ABS, _NR),
        op(_JGE_K, X32_SYSCALL_BIT, jf=1),
        op(_RET_K, deny),  # the x32 ABI
        op(_JEQ_K, CLONE3_X86_64, jf=1),
        op(_RET_K, SECCOMP_RET_ERRNO | ENOSYS),
    ]
    # instruction 8 + i: blocked[i] → the deny at 8 + n + 4
    prog += [op(_JEQ_K, nr, jt=n + 3 - i) for i, nr in enumerate(blocked)]
    prog += [
        op(_JEQ_K, CLONE_X86_64, jf=2),  # 8 + n: not clone → allow
        op(_LD_W_ABS, _ARG0_LO),
        op(_JSET_K, CLONE_NAMESPACES, jt=1),  # a namespace flag → deny
        op(_RET_K, SECCOMP_RET_ALLOW),
        op(_RET_K, deny),
    ]
    return b"".join(prog)


def preexec(limits: Limits, uid: int, cgroup: CGroup | None):
    """The function run in the child between fork and exec of bwrap."""

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
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            nproc = limits.pids  # a uid of its own: every process it counts is the sandbox's
        else:  # RLIMIT_NPROC counts all processes of the user, so allow what it already runs
            nproc = user_process_count() + limits.pids
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")

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
