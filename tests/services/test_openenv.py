"""OpenEnv interop against the real `openenv` package: our client drives an OpenEnv server, and
OpenEnv's own client drives an agentrl env through `agentrl env serve`'s server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import agentrl
from agentrl.env.remote import OpenEnvEnv, RemoteEnvError
from agentrl.env.server import EnvServer, ServerThread

openenv_server = pytest.importorskip(
    "openenv.core.env_server.http_server", reason="pip install agentrl[interop]"
)
uvicorn = pytest.importorskip("uvicorn")
from openenv.core import GenericEnvClient
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State


class GuessAction(Action):
    guess: int


class GuessObservation(Observation):
    hint: str = ""


class GuessEnvironment(Environment):
    """Guess a number in 0..99 (chosen from the seed); hints say higher/lower; reward 1 when found."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        super().__init__()
        self._state = State(step_count=0)
        self.target = 0

    def reset(self, seed=None, episode_id=None, **kwargs) -> GuessObservation:
        self.target = (seed or 0) * 37 % 100
        self._state = State(episode_id=episode_id or "e", step_count=0)
        return GuessObservation(hint="guess a number in 0..99")

    def step(self, action: GuessAction, timeout_s=None, **kwargs) -> GuessObservation:
        self._state.step_count += 1
        if action.guess == self.target:
            return GuessObservation(hint="correct", done=True, reward=1.0)
        return GuessObservation(hint="higher" if action.guess < self.target else "lower", reward=0.0)

    @property
    def state(self) -> State:
        return self._state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def openenv_url():
    app = openenv_server.create_app(
        GuessEnvironment, GuessAction, GuessObservation, env_name="guess", max_concurrent_envs=8
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _binary_search(env: OpenEnvEnv) -> list[tuple]:
    low, high, steps = 0, 99, []
    while not env.done:
        guess = (low + high) // 2
        observation, reward, terminated, _truncated, _info = env.step(f'{{"guess": {guess}}}')
        steps.append((guess, observation, reward, terminated))
        if observation == "higher":
            low = guess + 1
        elif observation == "lower":
            high = guess - 1
    return steps


def test_our_client_drives_an_openenv_server(openenv_url):
    env = OpenEnvEnv(url=openenv_url, observation_field="hint", max_turns=10)
    observation, info = env.reset(seed=3)  # target 3 * 37 % 100 = 11
    assert observation == "guess a number in 0..99" and info["task_id"] == "openenv-train"
    # actions the server's schema refuses are invalid actions: scored, the episode goes on
    assert env.step("fifty")[4]["valid_action"] is False
    bad = env.step('{"guess": "fifty"}')
    assert bad[4]["valid_action"] is False and "action schema" in bad[0] and bad[1] == 0.0
    steps = _binary_search(env)
    # 49 lower, 24 lower, 11 correct
    assert [s[0] for s in steps] == [49, 24, 11] and steps[-1][1:] == ("correct", 1.0, True)
    assert env.turn == 5
    state = asyncio.run(env.state())
    # the unparsable action never reached the server, the refused one never ran
    assert state["step_count"] == 3
    env.close()


def test_openenv_fork_replays_on_a_new_session(openenv_url):
    env = OpenEnvEnv(url=openenv_url, observation_field="hint")
    env.reset(seed=3)
    assert env.step('{"guess": 49}')[0] == "lower"
    twin = env.fork()
    assert twin.step('{"guess": 11}')[:3] == ("correct", 1.0, True)
    assert env.step('{"guess": 24}')[0] == "lower"  # the original is where it was
    env.close()
    twin.close()


def test_openenv_server_gone_is_infra(openenv_url):
    env = OpenEnvEnv(url="http://127.0.0.1:1")
    with pytest.raises(RemoteEnvError, match="cannot reach"):
        env.reset()


def test_openenv_client_drives_an_agentrl_env():
    env_id = "agentrl/Calculator-v0"
    local = agentrl.make(env_id)
    with ServerThread(EnvServer(env_id)) as thread:
        base = thread.url.replace("ws://", "http://")
        with GenericEnvClient(base_url=base).sync() as client:
            result = client.reset(seed=3)
            observation, _ = local.reset(seed=3)
            assert result.observation["text"] == observation and result.reward == 0.0 and not result.done
            while not local.done:
                action = local.oracle_action()
                text, reward, terminated, truncated, info = local.step(action)
                result = client.step({"text": action})
                assert result.observation == {
                    "text": text,
                    "info": info,
                    "terminated": terminated,
                    "truncated": truncated,
                }
                assert (result.reward, result.done) == (reward, terminated or truncated)
            state = client.state()
            assert state["step_count"] == 3 and state["task_id"] == local.task.id and state["done"] is True
        assert thread.server.sessions == {}  # the OpenEnv client's close released the session
