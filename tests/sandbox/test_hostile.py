"""Hostile code on both backends: every case ends in an ExecResult or a typed error within its
limit, leaves nothing running, and the pool serves the next call."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from agentrl_sandboxes import procs

from agentrl.sandbox import CodeCrashed, SandboxTimeout
from agentrl.sandbox.docker import DockerSandbox
from agentrl.sandbox.local import LocalSandbox

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


def sandbox_processes(sb) -> int:
    """Processes inside the sandbox, counted from the host."""
    if isinstance(sb, LocalSandbox):  # below bwrap (its monitor and the namespace's init)
        pids = procs.descendants(sb.proc.pid)
        return sum(Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap" for pid in pids)
    assert isinstance(sb, DockerSandbox)
    return len(sb.container.top()["Processes"])


async def assert_pool_serves(pool) -> None:
    """The next caller gets a clean, working sandbox: server + kernel only, no leftover state."""
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code("1 + 1", timeout=10)
        assert result.result == "2"
        assert sandbox_processes(sb) == 3  # the server, its zygote and its kernel, nothing else
        assert (await sb.exec(["ls", "-A"])).stdout == ""  # work dir wiped


async def test_infinite_loop_is_interrupted_with_state_kept(pool):
    async with pool.sandbox(timeout=120) as sb:
        await sb.run_code("x = 7")
        start = time.monotonic()
        with pytest.raises(SandboxTimeout) as info:
            await sb.run_code("while True:\n    pass", timeout=1.0)
        assert time.monotonic() - start < 1.0 + 3.0  # limit + interrupt grace + slack
        assert info.value.state_kept and info.value.result.error.name == "KeyboardInterrupt"
        assert (await sb.run_code("x * 6")).result == "42"
    await assert_pool_serves(pool)


async def test_fork_bomb_is_contained(pool):
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            time.sleep(0.01)\n"
        "time.sleep(2)\n"
        "print('kernel alive')\n"
    )
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(code, timeout=20)
        assert result.stdout == "kernel alive\n"
        assert sandbox_processes(sb) <= sb.limits.pids + 2  # the pids limit held
    await assert_pool_serves(pool)


async def test_memory_bomb_fails_inside_the_sandbox(pool):
    code = "chunks = []\nwhile True:\n    chunks.append(b'x' * (32 * 1024 * 1024))"
    async with pool.sandbox(timeout=120) as sb:
        try:
            result = await sb.run_code(code, timeout=30)
            assert result.error is not None and result.error.name == "MemoryError"
        except CodeCrashed:  # the OOM killer took the kernel: the code's doing, typed (not infra)
            pass
    await assert_pool_serves(pool)


async def test_disk_fill_stops_at_the_limit(pool):
    code = "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * (1 << 20))"
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(code, timeout=30)
        assert result.error is not None and result.error.name == "OSError"
        assert "File too large" in result.error.value or "No space left" in result.error.value
        size = (await sb.run_code("import os; os.path.getsize('big')")).result
        assert int(size) <= sb.limits.file_size_mb * 1024 * 1024
    await assert_pool_serves(pool)


async def test_megabytes_of_stdout_are_truncated(pool):
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(
            "for i in range(300_000):\n    print(i)\nprint('x' * 5_000_000)", timeout=60, max_output=100_000
        )
        assert result.truncated and result.outcome == "ok"
        assert len(result.stdout) == 100_000
        assert result.stdout.startswith("0\n1\n2\n")
    await assert_pool_serves(pool)


async def test_binary_and_non_utf8_output(pool):
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(
            "print(bytes(range(256)).decode('latin-1'), b'\\xff', '\\udcff')", timeout=10
        )
        assert result.outcome == "ok"
        assert "\xff" in result.stdout and "b'\\xff'" in result.stdout
        proc = await sb.exec(["printf", "\\377\\376raw\\000"], timeout=10)
        assert proc.returncode == 0 and proc.stdout == "\ufffd\ufffdraw\x00"
    await assert_pool_serves(pool)


async def test_network_is_unreachable(pool):
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(
            "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=3)", timeout=10
        )
        assert result.error is not None and "unreachable" in result.error.value
        dns = await sb.run_code("import socket\nsocket.getaddrinfo('pypi.org', 443)", timeout=10)
        assert dns.error is not None and dns.error.name == "gaierror"
    await assert_pool_serves(pool)


async def test_files_outside_the_work_dir(pool, tmp_path):
    secret = tmp_path / "host_secret.txt"
    secret.write_text("host secret")
    async with pool.sandbox(timeout=120) as sb:
        read = await sb.run_code(f"open({str(secret)!r}).read()", timeout=10)
        write = await sb.run_code("open('/etc/agentrl_probe', 'w').write('x')", timeout=10)
        # both backends are a boundary: host files out of reach, the root read-only
        assert read.error is not None and read.error.name == "FileNotFoundError"
        assert write.error is not None and write.error.name in ("OSError", "PermissionError")
        assert not Path("/etc/agentrl_probe").exists()
    await assert_pool_serves(pool)


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos._exit(3)",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",  # the server itself
    ],
    ids=["os_exit", "sigkill_kernel", "sigkill_process_group", "sigkill_server"],
)
async def test_killed_kernel_or_server_is_a_typed_error(pool, code):
    async with pool.sandbox(timeout=120) as sb:
        start = time.monotonic()
        try:
            result = await sb.run_code(code, timeout=10)
            # In a container the server is PID 1, which signals from inside cannot kill.
            assert isinstance(sb, DockerSandbox) and "getppid" in code and result.outcome == "ok"
        except CodeCrashed:  # the code's doing (not an InfraError), the server's death included
            pass
        assert time.monotonic() - start < 10
    await assert_pool_serves(pool)


async def test_background_processes_do_not_survive_release(pool):
    code = (
        "import subprocess, os\n"
        "subprocess.Popen(['sleep', '987'], start_new_session=True)\n"
        "if os.fork() == 0:\n"  # a double-forked daemon
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execvp('sleep', ['sleep', '986'])\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "'started'"
    )
    async with pool.sandbox(timeout=120) as sb:
        result = await sb.run_code(code, timeout=10)
        assert result.result == "'started'"
        assert sandbox_processes(sb) == 5  # server, zygote, kernel, two sleeps
    await assert_pool_serves(pool)
