"""A reset forks a fresh kernel from the zygote: nothing of one episode reaches the next.

On both backends: variables, imported modules, monkey-patches, cwd, environment variables,
files in the work dir, /tmp and home, processes left running, open fds and the random
generators' state of episode 1 are gone in episode 2, which looks exactly like a fresh
sandbox's first kernel. A zygote that the code killed is replaced.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")

# One expression (no names left behind): what a kernel can see of its sandbox.
SNAPSHOT = """(lambda os, sys, json: json.dumps({
    "names": sorted(k for k in globals() if not k.startswith("_")),
    "modules": sorted(sys.modules),
    "cwd": os.getcwd(),
    "env": dict(os.environ),
    "fds": sorted(os.listdir("/proc/self/fd")),
    "tmp": sorted(os.listdir("/tmp")),
    "home": sorted(os.listdir(os.path.expanduser("~"))),
    "work": sorted(os.listdir("/work")),
    "procs": sorted(open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                    for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline")),
    "numpy_pi": __import__("numpy").pi,
}))(__import__("os"), __import__("sys"), __import__("json"))"""

POLLUTE = """
import fractions, os, subprocess, sys, wave, numpy, random
secret = 42
numpy.pi = 3.0
fractions.Fraction = None
os.chdir("/tmp")
os.environ["LEAK"] = "1"
open("/tmp/leak.txt", "w").write("x")
open(os.path.expanduser("~/.leakrc"), "w").write("x")
open("/work/leak.txt", "w").write("x")
kept = open("/work/held.txt", "w")
fd = os.open("/work/leak.txt", os.O_RDONLY)
subprocess.Popen(["sleep", "600"], start_new_session=True)
subprocess.Popen(["sh", "-c", "(sleep 601 &) ; exit 0"])
draws = (random.random(), float(numpy.random.rand()))
import time
def sleeps():
    n = 0
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            n += b"sleep" in open(f"/proc/{p}/cmdline", "rb").read()
        except OSError:
            pass
    return n
for _ in range(500):  # until both sleeps run (the second one starts behind a shell)
    if sleeps() == 2:
        break
    time.sleep(0.01)
"""


async def snapshot(sb) -> dict:
    result = await sb.run_code(SNAPSHOT)
    assert result.error is None, result.text()
    return json.loads(eval(result.result))  # the repr of a str


async def draws(sb) -> tuple:
    return eval(
        (await sb.run_code("import random, numpy\n(random.random(), float(numpy.random.rand()))")).result
    )


async def test_reset_forks_a_kernel_without_episode_state(pool):
    async with pool.sandbox() as sb:
        await sb.reset()
        fresh = await snapshot(sb)
        assert "wave" not in fresh["modules"] and fresh["cwd"] == "/work" and "LEAK" not in fresh["env"]
        first = await draws(sb)
        await sb.reset()
        polluted = await sb.run_code(POLLUTE)
        assert polluted.error is None, polluted.text()
        dirty = await snapshot(sb)
        assert dirty != fresh and "wave" in dirty["modules"]  # the snapshot can see each leak
        assert sum("sleep" in p for p in dirty["procs"]) == 2
        await sb.reset()
        assert await snapshot(sb) == fresh
        assert (await sb.run_code("secret")).error.name == "NameError"
        assert (await sb.run_code("import fractions; fractions.Fraction(1, 2)")).result == "Fraction(1, 2)"
        second = await draws(sb)
        assert first[0] != second[0] and first[1] != second[1]  # no generator state copied


async def test_a_killed_zygote_is_replaced(pool):
    async with pool.sandbox() as sb:
        killed = await sb.run_code(
            "import os, signal\n"
            "zygote = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())\n"
            "          and b'agentrl_sandboxes.zygote' in open(f'/proc/{p}/cmdline', 'rb').read()]\n"
            "for p in zygote: os.kill(int(p), signal.SIGKILL)\n"
            "len(zygote)"
        )
        assert killed.result == "1"
        await sb.run_code("x = 1")
        await sb.reset()  # the slow way: a new zygote
        assert (await sb.run_code("x")).error.name == "NameError"
        assert (await sb.run_code("1 + 1")).result == "2"
