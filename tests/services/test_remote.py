"""RemoteEnv against a real EnvServer: the same episodes as in-process, typed errors, limits, infra."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import aiohttp
import pytest

import agentrl
from agentrl.env import EnvOptionError, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.remote import RemoteEnv, RemoteEnvBusy, RemoteEnvError, RemoteEnvTimeout
from agentrl.env.server import EnvServer, ServerThread
from agentrl.errors import InfraError
from agentrl.rollout.episode import ScriptedActor, run_actor

CALC = "agentrl/Calculator-v0"


class SleepyEnv(TextEnv):
    """Each step waits ``delay_s`` on the event loop (a stand-in for a slow sandbox)."""

    from agentrl.env.base import EnvConfig as _Base

    class Config(_Base):
        delay_s: float = 0.0

    def build_tasks(self) -> TaskSet:
        return TaskSet([Task(id="t0", split="train")])

    async def _areset(self, task: Task) -> str:
        return "ready"

    async def _astep(self, action: str) -> StepOutcome:
        await asyncio.sleep(self.config.delay_s)
        return StepOutcome(f"echo {action}")


agentrl.register("tests/Sleepy-v0", SleepyEnv)


class FragileEnv(SleepyEnv):
    """Cannot be built while ``broken`` is set."""

    broken = False

    def __init__(self, **options):
        if FragileEnv.broken:
            raise OSError("disk gone")
        super().__init__(**options)


agentrl.register("tests/Fragile-v0", FragileEnv)


@pytest.fixture
def calc_server():
    with ServerThread(EnvServer(CALC)) as thread:
        yield thread


def test_remote_episode_equals_the_in_process_one(calc_server):
    remote, local = RemoteEnv(calc_server.url, CALC), agentrl.make(CALC)
    assert remote.system_prompt() == local.system_prompt()
    assert remote.tools == local.tools and [t.name for t in remote.tools] == ["lookup", "calculator"]
    assert remote.reset(seed=3) == local.reset(seed=3)
    steps = 0
    while not local.done:
        action = local.oracle_action()
        assert remote.step(action) == local.step(action)
        assert remote.state_key() == local.state_key() and remote.turn == local.turn
        steps += 1
    assert steps == 3 and remote.done  # lookup, calculator, answer
    with pytest.raises(RuntimeError, match="episode is over"):
        remote.step("<answer>1</answer>")
    # text that is not valid Unicode crosses the wire and is refused as it is in-process
    assert remote.reset(seed=4) == local.reset(seed=4)
    refused = remote.step("<answer>\ud800</answer>")
    assert refused == local.step("<answer>\ud800</answer>") and refused[4]["valid_action"] is False
    remote.close()
    assert calc_server.server.sessions == {}


def test_async_fork_and_a_change_of_event_loop(calc_server):
    remote, local = agentrl.make(CALC, remote=calc_server.url), agentrl.make(CALC)
    assert isinstance(remote, RemoteEnv) and remote.spec.id == CALC

    async def start():
        await remote.areset(seed=5, options={"task_id": "shop-0007"})
        local.reset(seed=5, options={"task_id": "shop-0007"})
        action = local.oracle_action()
        assert await remote.astep(action) == local.step(action)
        return await remote.afork(), local.fork()

    twin, local_twin = asyncio.run(start())
    assert twin.session_id != remote.session_id and len(calc_server.server.sessions) == 2

    async def go_on():  # a new event loop: the same server-side sessions go on
        action = local_twin.oracle_action()
        assert await twin.astep(action) == local_twin.step(action)
        assert (await twin.state())["step_count"] == 2
        assert (await remote.state())["step_count"] == 1  # the original did not move
        await twin.aclose()

    asyncio.run(go_on())
    action = local.oracle_action()
    assert remote.step(action) == local.step(action)  # and the sync API on the original
    remote.close()
    assert calc_server.server.sessions == {}


def test_reset_option_errors_are_env_option_errors(calc_server):
    remote = RemoteEnv(calc_server.url)
    with pytest.raises(EnvOptionError, match="unknown task_id 'nope'"):
        remote.reset(options={"task_id": "nope"})
    with pytest.raises(EnvOptionError, match="colour"):
        remote.reset(options={"colour": "red"})
    with pytest.raises(RuntimeError, match="reset"):
        remote.step("x")
    wrong = RemoteEnv(calc_server.url, "agentrl/Maze-v0")  # no I/O yet: the check comes with the session
    with pytest.raises(EnvOptionError, match="serves 'agentrl/Calculator-v0', not 'agentrl/Maze-v0'"):
        wrong.reset()
    remote.close()
    assert calc_server.server.sessions == {}  # the wrong env's session was released


async def _frames(url: str, frames: list, headers=None) -> list[dict]:
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(url + "/ws") as ws:
        replies = []
        for frame in frames:
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_json(frame))
            replies.append(json.loads((await ws.receive()).data))
        return replies


def test_malformed_frames_get_typed_errors_and_the_session_goes_on(calc_server):
    replies = asyncio.run(
        _frames(
            calc_server.url,
            [
                "{not json",
                {"type": "teleport"},
                {"type": "step", "data": {}},
                {"type": "step", "data": {"text": "hi"}},  # before reset
                {"type": "reset", "data": {"seed": -1}},
                {"type": "reset", "data": {"seed": 1}},
                {"type": "step", "data": {"text": "no tool call here"}},
                {"type": "state"},
            ],
        )
    )
    codes = [r["data"].get("code") if r["type"] == "error" else r["type"] for r in replies]
    assert codes == [
        "INVALID_JSON",
        "UNKNOWN_TYPE",
        "VALIDATION_ERROR",
        "USAGE_ERROR",
        "VALIDATION_ERROR",
        "observation",
        "observation",
        "state",
    ]
    assert "text: Field required" in replies[2]["data"]["message"]
    step = replies[6]["data"]
    assert step["observation"]["info"]["valid_action"] is False and step["reward"] == 0.0 and not step["done"]
    assert replies[7]["data"]["step_count"] == 1


def test_session_cap_answers_busy_and_frees_on_close():
    with ServerThread(EnvServer(CALC, max_sessions=2)) as thread:
        first, second, third = (RemoteEnv(thread.url) for _ in range(3))
        first.reset(seed=0)
        second.reset(seed=0)
        with pytest.raises(RemoteEnvBusy, match="busy: 2 sessions") as caught:
            third.reset(seed=0)
        assert isinstance(caught.value, InfraError)
        first.close()
        assert third.reset(seed=0)[0]  # a slot is free again
        health = json.load(urllib.request.urlopen(thread.url.replace("ws", "http") + "/health"))
        assert health == {"status": "healthy", "env_id": CALC, "sessions": 2, "max_sessions": 2}
        second.close()
        third.close()


def test_an_env_that_cannot_be_built_is_reported_and_frees_its_slot():
    with ServerThread(EnvServer("tests/Fragile-v0", max_sessions=1)) as thread:
        FragileEnv.broken = True
        try:
            with pytest.raises(RuntimeError, match="building the env failed: OSError: disk gone"):
                RemoteEnv(thread.url).reset()
        finally:
            FragileEnv.broken = False
        remote = RemoteEnv(thread.url)
        assert remote.reset()[0] == "ready"  # the one slot was not leaked
        remote.close()


def test_idle_sessions_expire():
    # 1 s, not less: under load a reset alone took longer than a 0.2 s timeout (a flake)
    with ServerThread(EnvServer(CALC, idle_timeout_s=1.0)) as thread:
        remote = RemoteEnv(thread.url)
        remote.reset(seed=0)
        deadline = time.monotonic() + 10
        while thread.server.sessions and time.monotonic() < deadline:
            time.sleep(0.1)
        assert thread.server.sessions == {}
        with pytest.raises(RemoteEnvError):
            remote.step("<answer>1</answer>")


def test_bearer_token_rate_and_size_limits():
    server = EnvServer(CALC, token="s3cret", rate_limit=5, max_message_bytes=2000)
    with ServerThread(server) as thread:
        with pytest.raises(EnvOptionError, match="refused the bearer token"):
            RemoteEnv(thread.url).reset()
        with pytest.raises(EnvOptionError, match="refused the bearer token"):
            RemoteEnv(thread.url).tools  # noqa: B018 - reading the tools before a reset fetches /spec
        assert urllib.request.urlopen(thread.url.replace("ws", "http") + "/health").status == 200
        remote = RemoteEnv(thread.url, token="s3cret")
        remote.reset(seed=0)
        auth = {"Authorization": "Bearer s3cret"}
        big = {"type": "step", "data": {"text": "x" * 3000}}
        replies = asyncio.run(_frames(thread.url, [big, {"type": "reset"}] + [{"type": "state"}] * 18, auth))
        codes = [r["data"].get("code") if r["type"] == "error" else r["type"] for r in replies]
        # the bucket holds 5 frames (one second's worth): the first 5 pass, later ones are refused
        # until it refills; the session stays usable throughout
        assert codes[:5] == ["TOO_LARGE", "observation", "state", "state", "state"]
        assert "RATE_LIMITED" in codes[5:] and set(codes[5:]) <= {"state", "RATE_LIMITED"}
        time.sleep(0.5)
        assert asyncio.run(_frames(thread.url, [{"type": "reset"}], auth))[0]["type"] == "observation"
        remote.close()


def test_a_slow_server_times_out_as_infra():
    with ServerThread(EnvServer("tests/Sleepy-v0", {"delay_s": 1.0})) as thread:
        remote = RemoteEnv(thread.url, timeout_s=0.3)
        remote.reset()
        start = time.perf_counter()
        with pytest.raises(RemoteEnvTimeout, match="did not answer in 0.3 s"):
            remote.step("hello")
        assert time.perf_counter() - start < 1.5


def test_a_cancelled_step_does_not_leave_its_reply_for_the_next_request():
    with ServerThread(EnvServer("tests/Sleepy-v0", {"delay_s": 0.5})) as thread:
        remote = RemoteEnv(thread.url)

        async def cancel_then_step():
            await remote.areset()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await remote.astep("first")
            return await remote.astep("second")

        start = time.perf_counter()
        assert asyncio.run(cancel_then_step())[0] == "echo second"  # not the late reply to "first"
        # "first" still ran on the server, and "second" waited for it: 0.5 s + 0.5 s, not overlapped
        assert remote.turn == 2 and time.perf_counter() - start >= 0.95
        remote.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_server_killed_mid_episode_is_masked_by_the_rollout_engine():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentrl", "env", "serve", CALC, "-e", "max_turns=5", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"ws://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url.replace("ws", "http") + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ok = asyncio.run(run_actor(lambda: RemoteEnv(url, CALC), ScriptedActor(_Killer), seed=1))
        assert ok.status == "truncated" and ok.num_turns == 5  # max_turns=5 came from -e on the server

        class KillOnSecondTurn(_Killer):
            def act(self, observation: str) -> str:
                self.turns += 1
                if self.turns == 2:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                return "thinking"

        lost = asyncio.run(run_actor(lambda: RemoteEnv(url, CALC), ScriptedActor(KillOnSecondTurn), seed=1))
        assert lost.status == "infra_error" and lost.error.startswith("RemoteEnvError: lost the env server")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class _Killer:
    def __init__(self, env: TextEnv):
        self.turns = 0

    def act(self, observation: str) -> str:
        return "thinking"


def test_cli_serve_bad_id_or_option_is_one_line():
    from click.testing import CliRunner

    from agentrl.cli import main

    unknown = CliRunner().invoke(main, ["env", "serve", "agentrl/Calculatr-v0"])
    assert unknown.exit_code == 1 and "Did you mean: agentrl/Calculator-v0" in unknown.output
    assert "Traceback" not in unknown.output
    bad = CliRunner().invoke(main, ["env", "serve", CALC, "-e", "max_turns=zero"])
    assert bad.exit_code == 1 and "max_turns: Input should be a valid integer" in bad.output


def test_cli_serve_on_a_busy_port_says_cannot_bind_and_never_serving():
    import socket

    from click.testing import CliRunner

    from agentrl.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["env", "serve", CALC, "--port", str(port)])
    assert result.exit_code == 1 and f"cannot bind 127.0.0.1:{port}" in result.output
    assert "serving" not in result.output and "Traceback" not in result.output


@pytest.fixture
def sock_dir():
    folder = tempfile.mkdtemp(prefix="agentrl-t-")  # short: a socket path holds at most 107 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_constructing_in_a_running_loop_does_no_io(sock_dir):
    # the server is not up when the env is made: a constructor that fetched /spec would fail here
    port = _free_port()
    remote, local = RemoteEnv(f"ws://127.0.0.1:{port}", CALC), agentrl.make(CALC)
    assert remote.spec.id == CALC and remote._env_spec is None
    with ServerThread(EnvServer(CALC), port=port):
        assert await remote.areset(seed=3) == local.reset(seed=3)
        assert remote.tools == local.tools and remote.system_prompt() == local.system_prompt()
        action = local.oracle_action()
        assert await remote.astep(action) == local.step(action)
        await remote.aclose()


def test_unix_socket_episode_equals_the_in_process_one(sock_dir):
    path = os.path.join(sock_dir, "calc.sock")
    with ServerThread(EnvServer(CALC), unix=path) as thread:
        assert thread.url == f"unix://{path}"
        remote, local = agentrl.make(CALC, remote=thread.url), agentrl.make(CALC)
        assert remote.tools == local.tools  # before a reset: GET /spec over the socket
        assert remote.reset(seed=2) == local.reset(seed=2)
        while not local.done:
            action = local.oracle_action()
            assert remote.step(action) == local.step(action)
        assert remote.done and len(thread.server.sessions) == 1
        remote.close()
        assert thread.server.sessions == {}
    with pytest.raises(RemoteEnvError, match=f"cannot reach the env server at unix://{path}"):
        RemoteEnv(f"unix://{path}").reset()  # the server is gone


def test_a_pool_of_addresses_is_used_round_robin_and_a_fork_stays_on_its_server(sock_dir):
    paths = [os.path.join(sock_dir, f"{i}.sock") for i in range(2)]
    with ServerThread(EnvServer(CALC), unix=paths[0]) as a, ServerThread(EnvServer(CALC), unix=paths[1]) as b:
        pool = f"{a.url},{b.url}"
        envs = [agentrl.make(CALC, remote=pool) for _ in range(4)]
        for env in envs:
            env.reset(seed=0)
        assert len(a.server.sessions) == 2 and len(b.server.sessions) == 2
        assert [env.address.unix for env in envs] == paths * 2
        twin = envs[1].fork()  # its session is on b, so the twin is too
        assert twin.address.unix == paths[1] and len(b.server.sessions) == 3
        assert RemoteEnv([a.url, b.url]).address.unix in paths  # a list is a pool too
        for env in [*envs, twin]:
            env.close()
        assert a.server.sessions == {} and b.server.sessions == {}


def test_bad_addresses_are_one_line_option_errors():
    for url, message in [
        ("unix://relative.sock", "expected unix:///ABSOLUTE/PATH.sock"),
        ("tcp://x:1", "expected ws://HOST:PORT, http://HOST:PORT or unix:///PATH.sock"),
        (" , ", "no server address given"),
    ]:
        with pytest.raises(EnvOptionError, match=re.escape(message)):
            RemoteEnv(url)


def test_cli_serve_unix_socket_path_errors_are_one_line(sock_dir):
    from click.testing import CliRunner

    from agentrl.cli import main

    for path, message in [
        (os.path.join(sock_dir, "no", "such", "env.sock"), "does not exist"),
        (os.path.join(sock_dir, "x" * 120 + ".sock"), "the limit is 107"),
    ]:
        result = CliRunner().invoke(main, ["env", "serve", CALC, "--unix", path])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    locked = os.path.join(sock_dir, "locked")
    os.mkdir(locked, 0o500)
    if os.geteuid() != 0:  # root writes anywhere
        result = CliRunner().invoke(main, ["env", "serve", CALC, "--unix", os.path.join(locked, "env.sock")])
        assert result.exit_code == 1 and "is not writable" in result.output
