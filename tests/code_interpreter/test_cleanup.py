"""No sandbox outlives the process that started it: counted before and after a HumanEval
episode that ends normally, by an exception, and by SIGTERM (in a child interpreter)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import agentrl
    from agentrl.env import OracleAgent, aplay_episode

    async def main(backend, end):
        env = agentrl.make("agentrl/HumanEval-v0", backend=backend, pool_size=2)
        trajectory = await aplay_episode(env, OracleAgent(env), seed=0)
        assert trajectory.success
        await env.areset(seed=1)
        await env.astep("```python\\nx = 1\\n```")  # a sandbox in use at the end
        print("ready", flush=True)
        sys.stdin.readline()  # the parent has counted the sandboxes (or sends SIGTERM meanwhile)
        if end == "exception":
            raise RuntimeError("boom")
        await env.aclose()
        env.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def sandboxes_of(backend: str, pid: int, known: set) -> set:
    """The live sandboxes started by process ``pid`` (containers by owner label; local servers by
    descent while it lives, then by the pids seen then, since orphans are re-parented)."""
    if backend == "docker":
        out = subprocess.run(
            ["docker", "ps", "-q", "--filter", "label=agentrl.sandbox=1", "--filter", f"label=agentrl.pid={pid}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return set(out.stdout.split())
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:  # a short-lived child may be gone between the listing and its cmdline (it is not a sandbox)
            if "agentrl_sandboxes.server" in child.cmdline():
                known.add(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return {p for p in known if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}


@pytest.mark.slow
@pytest.mark.parametrize("end", ["normal", "exception", "sigterm"])
def test_no_sandbox_survives_the_process(backend, end):
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, backend, end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    seen: set = set()
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        assert sandboxes_of(backend, child.pid, seen), "the run had no live sandbox to clean up"
        if end == "sigterm":
            child.send_signal(signal.SIGTERM)
        else:
            child.stdin.write("go\n")
            child.stdin.flush()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    stderr = child.stderr.read()
    assert child.returncode == {"normal": 0, "exception": 1, "sigterm": 128 + signal.SIGTERM}[end], stderr
    assert "cannot schedule new futures" not in stderr
    deadline = time.monotonic() + 10  # a local server exits on its own once its stdin closes
    while sandboxes_of(backend, child.pid, seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandboxes_of(backend, child.pid, seen) == set(), stderr
