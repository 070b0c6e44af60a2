"""McpToolEnv against a real MCP server (FastMCP, two tools) over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="pip install agentrl[mcp]")
from agentrl.env import EnvOptionError
from agentrl.env.mcp_tools import McpToolEnv, McpUnavailable, load_tasks
from agentrl.errors import InfraError

SERVER = Path(__file__).with_name("mcp_server.py")
PARIS_ROME = {
    "id": "q1",
    "prompt": "How many people live in Paris and Rome together?",
    "answer": "4900000",
    "split": "train",
}


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.fixture
def tasks(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        json.dumps(PARIS_ROME) + "\n" + json.dumps({"id": "q2", "prompt": "Oslo?", "answer": "700000"}) + "\n"
    )
    return str(path)


def test_stdio_tools_come_from_the_server_and_calls_go_through_it(tasks):
    env = McpToolEnv(server=f"{sys.executable} {SERVER}", tasks=tasks)
    try:
        assert [t.name for t in env.tools] == ["population", "add"]
        add = env.tools[1]
        assert add.description == "The sum of two integers."
        assert (
            add.parameters["required"] == ["a", "b"]
            and add.parameters["properties"]["a"]["type"] == "integer"
        )
        observation, info = env.reset(options={"task_id": "q1"})
        assert observation == PARIS_ROME["prompt"]
        text, _reward, done, _, info = env.step(
            call("population", city="Paris") + call("population", city="Lima")
        )
        responses = [
            json.loads(r)
            for r in text.removeprefix("<tool_response>")
            .removesuffix("</tool_response>")
            .split("</tool_response>\n<tool_response>")
        ]
        assert responses[0] == {"result": 2_100_000}
        assert "unknown city 'Lima'" in responses[1]["error"]  # the tool's own error: an observation
        assert info["tool_calls"] == 2 and info["valid_action"] and not done
        # arguments the server's schema refuses never reach it: an invalid action
        bad = env.step(call("add", a="two", b=3))
        assert not bad[4]["valid_action"] and "'two' is not of type 'integer'" in bad[0]
        assert (
            env.step(call("add", a=2_100_000, b=2_800_000))[0]
            == '<tool_response>{"result": 4900000}</tool_response>'
        )
        assert env.step("<answer>4900000</answer>")[1:3] == (1.0, True)
    finally:
        env.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_streamable_http_and_a_dead_server_is_infra(tasks):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        env = McpToolEnv(server=url, tasks=tasks, timeout_s=5)
        assert [t.name for t in env.tools] == ["population", "add"]
        env.reset(options={"task_id": "q2"})
        assert (
            env.step(call("population", city="oslo"))[0]
            == '<tool_response>{"result": 700000}</tool_response>'
        )
        twin = env.fork()  # a fresh session replaying the episode
        assert twin.turn == 1 and twin.step("<answer>700000</answer>")[1] == 1.0
        twin.close()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with pytest.raises(McpUnavailable) as caught:
            env.step(call("add", a=1, b=2))
        assert isinstance(caught.value, InfraError)
        env.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_unreachable_server_and_bad_task_files(tmp_path, tasks):
    with pytest.raises(McpUnavailable, match="cannot start or reach"):
        McpToolEnv(server="http://127.0.0.1:1/mcp", tasks=tasks, timeout_s=5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PARIS_ROME) + "\n\n" + json.dumps({"id": "q3", "answer": "1"}) + "\n")
    with pytest.raises(EnvOptionError, match=r"bad.jsonl line 3: prompt: Field required"):
        load_tasks(bad)
    bad.write_text(json.dumps({**PARIS_ROME, "split": "holdout"}) + "\n")
    with pytest.raises(EnvOptionError, match=r"line 1: split: Input should be 'train', 'dev' or 'test'"):
        load_tasks(bad)
    bad.write_text("{oops\n")
    with pytest.raises(EnvOptionError, match=r"line 1: \(line\): Invalid JSON"):
        load_tasks(bad)
    assert load_tasks(tasks).split_sizes()["train"] >= 1
