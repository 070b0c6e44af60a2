"""No local sandbox folder (``$TMPDIR/agentrl-sandbox-*``) outlives the process that made it.

Each case runs in a subprocess with a private ``TMPDIR``, so other sandboxes on the machine do
not matter, and counts the folders left once it has exited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmp():
    # not pytest's tmp_path: its parents are 0700, and the sandbox's own uid must walk to its folder
    path = Path(tempfile.mkdtemp(prefix="agentrl-cleanup-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _left(tmp: Path, argv: list[str]) -> list[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return sorted(p.name for p in tmp.glob("agentrl-sandbox-*"))


def test_eval_run_leaves_no_sandbox_folder(tmp, tmp_path):
    cli = Path(sys.executable).with_name("agentrl")
    argv = [str(cli), "eval", "run", "--env", "agentrl/CodeMath-v0", "--agent", "oracle", "--max-tasks", "3"]
    assert _left(tmp, [*argv, "-o", str(tmp_path / "run")]) == []


CLOSE_AT_EXIT = """
import asyncio, atexit
from agentrl.sandbox import create
loop = asyncio.new_event_loop()
sb = loop.run_until_complete(create("local"))
# a plain atexit hook runs after the interpreter shut its thread pools down
atexit.register(lambda: loop.run_until_complete(sb.close()))
"""

NEVER_CLOSED = """
import asyncio
from agentrl.sandbox import create
async def main():
    sb = await create("local")
    assert (await sb.health()).ok  # and never closed
asyncio.run(main())
"""


@pytest.mark.parametrize("script", [CLOSE_AT_EXIT, NEVER_CLOSED], ids=["closed-at-exit", "never-closed"])
def test_sandbox_folder_removed_at_exit(tmp, script):
    assert _left(tmp, [sys.executable, "-c", script]) == []
