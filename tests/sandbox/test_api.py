"""The sandbox API on a real kernel (local backend) and the pool's contract."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import pytest_asyncio

from agentrl.sandbox import SandboxCrashed, SandboxPool, SandboxUnavailable, create
from agentrl.sandbox.docker import LABEL, cleanup_orphans, owner_labels
from tests.sandbox.conftest import LIMITS, docker_skip_reason

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sb():
    async with await create("local") as sandbox:  # default limits: room for numpy + matplotlib
        yield sandbox


async def test_state_result_display_and_error(sb):
    await sb.run_code("x = 20")
    result = await sb.run_code("print('hi')\nx + 22")
    assert (result.stdout, result.result, result.error) == ("hi\n", "42", None)
    plot = await sb.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    assert len(plot.images) == 1 and plot.images[0][:8] == b"\x89PNG\r\n\x1a\n"
    err = await sb.run_code("1 / 0")
    assert err.outcome == "error" and (err.error.name, err.error.value) == (
        "ZeroDivisionError",
        "division by zero",
    )
    assert not any("\x1b[" in line for line in err.error.traceback)
    assert err.text().endswith("ZeroDivisionError: division by zero")


async def test_fd_output_order_forked_child_and_stdin(sb):
    # print and a child process share fd 1: captured in order, all of it before the reply
    mixed = await sb.run_code("import os\nprint('a')\nos.system('echo b; echo c >&2')\nprint('d')")
    assert (mixed.stdout, mixed.stderr, mixed.result) == ("a\nb\nd\n", "c\n", None)
    # a fork that falls out of the cell exits there: one reply, the next cell gets its own
    forked = await sb.run_code("import os\npid = os.fork()\n'child' if pid == 0 else 'parent'")
    assert forked.result == "'parent'"
    assert (await sb.run_code("6 * 7")).result == "42"
    assert (await sb.run_code("input()")).error.name == "EOFError"  # no stdin to wait on


async def test_exec_files_and_bad_input(sb):
    proc = await sb.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (proc.returncode, proc.stdout, proc.stderr, proc.timed_out) == (3, "out\n", "err\n", False)
    slow = await sb.exec(["sleep", "30"], timeout=0.5)
    assert slow.timed_out and slow.returncode == -signal.SIGKILL
    missing = await sb.exec(["no-such-binary-xyz"])
    assert missing.returncode == 127 and "FileNotFoundError" in missing.stderr
    info = await sb.put_file("data/in.bin", bytes(range(256)))
    assert (info.path, info.size) == ("data/in.bin", 256)
    assert await sb.get_file("data/in.bin") == bytes(range(256))
    assert (await sb.run_code("len(open('data/in.bin','rb').read())")).result == "256"
    with pytest.raises(ValueError, match="outside the work dir"):
        await sb.put_file("../escape", b"x")
    with pytest.raises(FileNotFoundError):
        await sb.get_file("nope.txt")
    with pytest.raises(ValueError):
        await sb.run_code("1", timeout=-1)  # rejected by the pydantic model before it is sent


async def test_reset_clears_state_and_files(sb):
    await sb.run_code("y = 1")
    await sb.put_file("f.txt", b"x")
    await sb.reset()
    assert (await sb.run_code("y")).error.name == "NameError"
    with pytest.raises(FileNotFoundError):
        await sb.get_file("f.txt")


async def test_pool_cap_reset_and_replacement():
    async with SandboxPool(backend="local", size=1, max_size=1, limits=LIMITS, health_interval=0) as pool:
        sb = await pool.acquire()
        await sb.run_code("secret = 1")
        with pytest.raises(SandboxUnavailable, match="busy"):
            await pool.acquire(timeout=0.2)  # the cap holds
        await pool.release(sb)
        again = await pool.acquire(timeout=60)  # waits for the background reset
        assert (await again.run_code("secret")).error.name == "NameError"
        os.kill(again.proc.pid, signal.SIGKILL)  # the whole sandbox dies, before the next call
        await again.proc.wait()
        await asyncio.sleep(0.5)  # its server too (a death *during* a call is the code's: CodeCrashed)
        with pytest.raises(SandboxCrashed):
            await again.run_code("1")
        await pool.release(again)
        fresh = await pool.acquire(timeout=60)
        assert fresh is not again and (await fresh.run_code("2 + 2")).result == "4"
        assert pool.stats()["replaced"] == 1
        await pool.release(fresh)


async def test_acquire_waits_for_a_reset_in_flight_rather_than_start_a_sandbox():
    # size 0: no background refill, so every sandbox the pool has is one acquire started
    async with SandboxPool(backend="local", size=0, max_size=2, limits=LIMITS, health_interval=0) as pool:
        sb = await pool.acquire()
        await pool.release(sb)  # its reset runs in the background (milliseconds)
        again = await pool.acquire(timeout=60)  # not a second sandbox (seconds of CPU)
        assert again is sb and pool.stats()["live"] == 1
        other = await pool.acquire(timeout=60)  # nothing in flight for this one: a new sandbox
        assert other is not sb and pool.stats()["live"] == 2
        await pool.release(again)
        await pool.release(other)


async def test_health_check_replaces_a_dead_idle_sandbox():
    async with SandboxPool(backend="local", size=1, max_size=1, limits=LIMITS, health_interval=0.2) as pool:
        idle = pool._idle[0]
        os.kill(idle.proc.pid, signal.SIGKILL)
        for _ in range(300):
            await asyncio.sleep(0.1)
            if pool.stats()["replaced"] == 1 and pool.stats()["idle"] == 1:
                break
        assert pool.stats()["replaced"] == 1
        async with pool.sandbox(timeout=60) as sb:
            assert sb is not idle and (await sb.run_code("3")).result == "3"


@pytest.mark.docker
async def test_docker_container_is_locked_down(tmp_path):
    if docker_skip_reason():
        pytest.skip(docker_skip_reason())
    async with await create("docker", LIMITS) as sb:
        result = await sb.run_code(
            "import os\n(os.getuid(), os.getcwd(), os.access('/', os.W_OK), os.access('/work', os.W_OK))"
        )
        assert result.result == "(1000, '/work', False, True)"
        attrs = sb.container.attrs["HostConfig"]
        assert (
            attrs["NetworkMode"] == "none" and attrs["ReadonlyRootfs"] and attrs["PidsLimit"] == LIMITS.pids
        )
        assert attrs["Memory"] == LIMITS.memory_mb * 1024 * 1024 and attrs["CapDrop"] == ["ALL"]


@pytest.mark.docker
async def test_orphaned_containers_are_removed():
    if docker_skip_reason():
        pytest.skip(docker_skip_reason())
    from agentrl.sandbox.image import DEFAULT_IMAGE, docker_client

    client = docker_client()
    labels = {**owner_labels(), "agentrl.pid_start": "0"}  # an owner that no longer exists
    orphan = client.containers.create(DEFAULT_IMAGE, ["true"], labels=labels, network_mode="none")
    live = client.containers.create(DEFAULT_IMAGE, ["true"], labels=owner_labels(), network_mode="none")
    try:
        removed = cleanup_orphans(client)
        assert orphan.name in removed and live.name not in removed
        assert [
            c.name for c in client.containers.list(all=True, filters={"label": LABEL}) if c.name == live.name
        ]
    finally:
        live.remove(force=True)
