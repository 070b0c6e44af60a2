"""The env server in containers (real Docker): the image, N containers without network, sockets.

Skipped, with the reason, only when no Docker engine answers. The image is built by
scripts/docker_setup.sh in CI; the fixture's build is then a no-op (its build label matches).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
from click.testing import CliRunner

import agentrl
from agentrl.cli import main
from agentrl.env.container import (
    EnvContainerError,
    build_env_image,
    image_tag,
    start_env_containers,
    stop_env_containers,
)
from agentrl.env.remote import RemoteEnv, RemoteEnvError
from agentrl.errors import InfraError
from agentrl.rollout.episode import ScriptedActor, run_actor
from agentrl.sandbox.errors import SandboxUnavailable

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CALC = "agentrl/Calculator-v0"


@functools.cache
def docker_skip_reason() -> str | None:
    from agentrl.sandbox.image import docker_client

    try:
        docker_client()
    except SandboxUnavailable as exc:
        return f"no Docker engine reachable: {exc}"
    return None


@pytest.fixture(scope="module")
def calc_image():
    if docker_skip_reason():
        pytest.skip(docker_skip_reason())
    return build_env_image(CALC, log=lambda line: None)


@pytest.fixture(scope="module")
def two_servers(calc_image):
    with start_env_containers(CALC, n=2, options=["max_turns=5"]) as started:
        yield started


def test_an_episode_through_each_container_equals_the_in_process_one(two_servers):
    assert len(two_servers.urls) == 2 and two_servers.remote == ",".join(two_servers.urls)
    for url in two_servers.urls:
        remote, local = RemoteEnv(url, CALC), agentrl.make(CALC)
        assert remote.reset(seed=7) == local.reset(seed=7)
        assert remote.tools == local.tools and remote.system_prompt() == local.system_prompt()
        while not local.done:
            action = local.oracle_action()
            assert remote.step(action) == local.step(action)
        assert remote.done and local.done
        remote.close()


def test_the_containers_have_no_network_and_no_torch(two_servers):
    for container in two_servers.containers:
        container.reload()
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert container.attrs["Config"]["User"] != "" and not container.attrs["Config"]["User"].startswith(
            "0"
        )
    probe = (
        "import importlib.util, os, socket\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        "print([importlib.util.find_spec(m) for m in ('torch', 'transformers')])\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__, exc.errno)\n"
    )
    code, output = two_servers.containers[0].exec_run(["python", "-c", probe])
    lines = output.decode().splitlines()
    assert code == 0 and lines[0] == "['lo']" and lines[1] == "[None, None]"
    assert lines[2] == "OSError 101"  # ENETUNREACH: no route anywhere, only loopback


class _Killer:
    """Thinks aloud each turn; on turn 2 kills the container ``target`` (if set)."""

    target = None

    def __init__(self, env):
        self.turns = 0

    def act(self, observation: str) -> str:
        self.turns += 1
        if self.turns == 2 and _Killer.target is not None:
            _Killer.target.kill()
        return "thinking"


def test_a_container_killed_mid_episode_is_an_infra_error_never_a_reward(calc_image):
    with start_env_containers(CALC, n=2, options=["max_turns=5"]) as started:
        doomed, survivor = started.urls

        def episode(url):
            return asyncio.run(run_actor(lambda: RemoteEnv(url, CALC), ScriptedActor(_Killer), seed=1))

        ok = episode(doomed)
        assert ok.status == "truncated" and ok.num_turns == 5  # max_turns=5 came from -e
        _Killer.target = started.containers[0]
        try:
            lost = episode(doomed)
        finally:
            _Killer.target = None
        assert lost.status == "infra_error" and lost.error.startswith("RemoteEnvError: ")
        assert lost.success is False and not lost.learnable  # masked out of every learning signal
        with pytest.raises(RemoteEnvError) as caught:
            RemoteEnv(doomed, CALC).reset()
        assert isinstance(caught.value, InfraError)
        assert episode(survivor).status == "truncated"  # the other container goes on


def _ours(folder) -> list:
    from agentrl.sandbox.image import docker_client

    label = {"label": "agentrl.env-server"}
    return [
        c
        for c in docker_client().containers.list(all=True, filters=label)
        if str(folder) in c.labels.get("agentrl.env-dir", "")
    ]


def test_a_server_that_exits_or_does_not_answer_in_time_is_named_and_nothing_is_left(calc_image, tmp_path):
    # Both servers refuse the option and exit: the first seen is named with its last log line.
    with pytest.raises(EnvContainerError) as caught:
        start_env_containers(CALC, n=2, folder=tmp_path / "bad", options=["bogus=1"])
    assert re.fullmatch(
        r"env server container agentrl-env-[0-9a-f]{10} exited: Error: CalculatorEnv: invalid option\(s\) — "
        r"bogus: Extra inputs are not permitted\. Known options: .*",
        str(caught.value),
    ), caught.value
    with pytest.raises(EnvContainerError) as caught:  # no server answers within 0.05 s of its start
        start_env_containers(CALC, n=3, folder=tmp_path / "slow", timeout_s=0.05)
    assert str(caught.value) == "3 env server container(s) did not answer /health within 0.05 s"
    assert _ours(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["bad", "slow"]
    assert os.listdir(tmp_path / "bad") == os.listdir(tmp_path / "slow") == []


def test_cli_up_detached_then_down(calc_image):
    folder = tempfile.mkdtemp(prefix="agentrl-t-")
    try:
        up = subprocess.run(
            [sys.executable, "-m", "agentrl", "env", "up", CALC, "-n", "1", "--dir", folder, "--detach"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert up.returncode == 0, up.stderr
        url = f"unix://{folder}/0/env.sock"
        assert up.stdout.splitlines() == [url] and f'remote="{url}"' in up.stderr
        remote = agentrl.make(CALC, remote=up.stdout.strip())
        assert remote.reset(seed=0)[0] == agentrl.make(CALC).reset(seed=0)[0]
        remote.close()
        down = CliRunner().invoke(main, ["env", "down", CALC, "--dir", folder])
        assert down.exit_code == 0 and down.output.startswith("removed 1 container(s): agentrl-env-")
        assert not os.path.exists(f"{folder}/0")
        assert stop_env_containers(CALC, folder) == []
    finally:
        stop_env_containers(CALC, folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_cli_up_in_the_foreground_stops_its_containers_on_ctrl_c_or_kill(calc_image, stop):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentrl", "env", "up", CALC, "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # printed once the server answers
        folder = os.path.dirname(os.path.dirname(url.removeprefix("unix://")))
        assert url.startswith("unix:///") and RemoteEnv(url, CALC).reset(seed=0)[0]
        proc.send_signal(stop)
        assert proc.wait(60) == 0 and "stopped 1 container(s)" in proc.stderr.read()
        assert not os.path.exists(folder)  # the temporary socket folder it made is gone too
        assert stop_env_containers(CALC, folder) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_errors_are_one_line(calc_image, monkeypatch):
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["env", *args])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        return result.output.strip().splitlines()[
            -1
        ]  # (after a warning when the sources changed since the build)

    missing = run("up", CALC, "--image", "agentrl-env:not-built-here")
    assert (
        missing
        == "Error: image agentrl-env:not-built-here not found: build it with `agentrl env image agentrl/Calculator-v0`"
    )
    assert run("up", CALC, "--dir", "/etc/hostname/sockets").startswith(
        "Error: cannot make the socket folder /etc/hostname/sockets: "
    )
    long = "/tmp/" + "d" * 100  # its socket DIR/0/env.sock: 5 + 100 + 11 = 116 bytes
    assert (
        run("up", CALC, "--dir", long)
        == f"Error: --dir: socket path {long}/0/env.sock is 116 bytes; the limit is 107"
    )
    assert "unknown environment 'agentrl/Calculatr-v0'" in run("image", "agentrl/Calculatr-v0")
    with pytest.raises(EnvContainerError, match="not found: build it with"):
        start_env_containers(CALC, image="agentrl-env:not-built-here")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert run("up", CALC).startswith("Error: no Docker engine answers")


def test_image_tags():
    assert image_tag(CALC) == "agentrl-env:agentrl-calculator-v0"
    assert image_tag("my.org/Tools_v0") == "agentrl-env:my.org-tools_v0"
