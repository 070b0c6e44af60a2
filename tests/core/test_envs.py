"""The env contract on every registered environment, and the toy envs' own numbers."""

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest
from agentrl_envs.toy.calculator import evaluate_arithmetic
from agentrl_envs.toy.maze import generate_maze, shortest_path

import agentrl
from agentrl.env import EnvOptionError, UnknownEnvError, aplay_episode, make_agent

INFO_KEYS = {"tool_calls", "valid_action", "state_key", "success", "error", "task_id", "turn"}
TOY = ["agentrl/Maze-v0", "agentrl/Calculator-v0"]


# Every bundled id, checked through plain Gymnasium in a fresh interpreter that only imported
# agentrl (one interpreter per group; browser-tier ids need Chromium).
BUNDLED = [i for i in agentrl.list_envs() if agentrl.env.registry.env_sources()[i].startswith("agentrl_envs.")]
BROWSER = [i for i in BUNDLED if i.startswith("agentrl/MiniWoB")]
FRESH_CHECK = """
import json, sys, traceback
import gymnasium
from gymnasium.utils.env_checker import check_env
import agentrl
from agentrl.sandbox import SandboxUnavailable
results = {"known": sorted(i for i in gymnasium.registry if i.startswith("agentrl/"))}
for env_id in sys.argv[1:]:
    try:
        env = gymnasium.make(env_id)
        try:
            check_env(env, skip_render_check=True)
            results[env_id] = "ok"
        finally:
            env.close()
    except SandboxUnavailable as exc:
        results[env_id] = f"skip: {exc}"
    except Exception:
        results[env_id] = traceback.format_exc(limit=4)
print(json.dumps(results))
"""


def fresh_interpreter(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def checked():
    return json.loads(fresh_interpreter(FRESH_CHECK, *[i for i in BUNDLED if i not in BROWSER]))


@pytest.fixture(scope="module")
def checked_browser():
    return json.loads(fresh_interpreter(FRESH_CHECK, *BROWSER))


def _outcome(results, env_id):
    if results[env_id].startswith("skip: "):  # e.g. no Chromium on this machine: say so, do not fail
        pytest.skip(f"{env_id} needs infrastructure that is not available here: {results[env_id][6:]}")
    assert results[env_id] == "ok", results[env_id]


def test_import_agentrl_registers_every_env_with_gymnasium(checked):
    # The ids Gymnasium knows right after `import agentrl` (no agentrl.make call) are all of them.
    assert set(BUNDLED) <= set(checked["known"])
    assert {"agentrl/Maze-v0", "agentrl/SearchQA-v0", "agentrl/WebShop-v0", "agentrl/HumanEval-v0"} <= set(BUNDLED)


@pytest.mark.parametrize("env_id", [i for i in BUNDLED if i not in BROWSER])
def test_gymnasium_make_and_check_env_in_a_fresh_interpreter(checked, env_id):
    _outcome(checked, env_id)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("env_id", BROWSER)
def test_gymnasium_make_and_check_env_browser_tier(checked_browser, env_id):
    _outcome(checked_browser, env_id)


def test_registration_is_cheap_and_works_without_importing_agentrl():
    code = """
import sys, gymnasium
try:
    gymnasium.make("agentrl/Maze-v0")  # Gymnasium 1.x loads no plug-ins by itself
    print("made")
except gymnasium.error.NamespaceNotFound:
    print("namespace-not-found")
env = gymnasium.make("agentrl:agentrl/Maze-v0")  # Gymnasium's module prefix imports agentrl first
print(type(env).__name__, env.reset(seed=0)[1]["task_id"] is not None)
heavy = ["agentrl_envs.search.env", "agentrl_envs.webshop.env", "agentrl_envs.code_interpreter.env",
         "bm25s", "jupyter_client", "selenium", "rapidfuzz", "agentrl.sandbox", "aiohttp"]
print(",".join(m for m in heavy if m in sys.modules) or "none")
"""
    out = fresh_interpreter(code).split()
    assert out == ["namespace-not-found", "MazeEnv", "True", "none"]


def test_plugin_imported_before_agentrl_is_registered_on_first_make():
    # The toy package imports agentrl at its top, so its hook cannot run while agentrl loads;
    # it is deferred to the first make()/list_envs(), and no plug-in is reported broken.
    code = """
import agentrl_envs.toy.maze
import agentrl
from agentrl.env.registry import plugin_errors
print(type(agentrl.make("agentrl/Maze-v0")).__name__, "agentrl/SearchQA-v0" in agentrl.list_envs(), plugin_errors())
"""
    assert fresh_interpreter(code).split() == ["MazeEnv", "True", "{}"]


@pytest.mark.parametrize("env_id", TOY)
def test_same_seed_same_episode_and_info_contract(env_id):
    def episode(seed):
        env = agentrl.make(env_id)
        agent = make_agent("random", env, seed=seed)
        obs, info = env.reset(seed=seed)
        assert INFO_KEYS <= set(info)
        record = [obs]
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs))
            assert INFO_KEYS <= set(info)
            record.append((obs, reward, terminated, truncated, info["state_key"], info["valid_action"]))
            done = terminated or truncated
        return record

    assert episode(11) == episode(11)
    assert episode(11) != episode(12)


@pytest.mark.parametrize("env_id", TOY)
def test_oracle_solves_every_test_task_and_random_is_far_below(env_id):
    env = agentrl.make(env_id)
    test_tasks = env.tasks.split("test")
    oracle = [asyncio.run(aplay_episode(env, make_agent("oracle", env), task_id=t.id)) for t in test_tasks]
    assert all(t.success and t.final_reward == 1.0 for t in oracle)
    random = [
        asyncio.run(aplay_episode(env, make_agent("random", env, seed=i), seed=i, task_id=t.id))
        for i, t in enumerate(test_tasks)
    ]
    assert np.mean([t.success for t in random]) < 0.5


def test_splits_are_fixed_and_seed_independent():
    a, b = agentrl.make("agentrl/Maze-v0"), agentrl.make("agentrl/Maze-v0", num_tasks=800)
    test_a = set(a.tasks.split("test").ids())
    # More tasks never moves an existing task across the boundary.
    assert test_a == {t for t in b.tasks.split("test").ids() if t in set(a.tasks.ids())}
    assert 0.1 < len(test_a) / len(a.tasks) < 0.3
    env = agentrl.make("agentrl/Maze-v0", split="test")
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert info["task_id"] in test_a


def test_maze_moves_walls_and_anchor_states():
    env = agentrl.make("agentrl/Maze-v0")
    obs, info = env.reset(seed=0)
    start = env.position
    assert info["state_key"] == f"{start[0]},{start[1]}"
    assert "@" in obs and "G" in obs
    path = shortest_path(env.rows, env.position, env.goal)
    for move in path[:-1]:
        obs, reward, terminated, _truncated, info = env.step(f"move[{move}]")
        assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _truncated, info = env.step(f"move[{path[-1]}]")
    assert (reward, terminated, info["success"]) == (1.0, True, True)
    rows, start, goal = generate_maze("maze5-0001", 5, 0.25)
    assert (rows, start, goal) == generate_maze("maze5-0001", 5, 0.25)


def test_bad_actions_are_observations_until_the_invalid_limit():
    env = agentrl.make("agentrl/Maze-v0", max_invalid_actions=3)
    env.reset(seed=0)
    obs, _reward, terminated, truncated, info = env.step("fly[north]")
    assert info["valid_action"] is False and "Unknown command 'fly'" in info["error"] and "Unknown command" in obs
    obs, *_, info = env.step("move[north]")
    assert "Unknown direction 'north'" in info["error"]
    _, _, terminated, truncated, info = env.step("")
    assert (terminated, truncated, info["truncation"]) == (False, True, "invalid_actions")
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("move[up]")


def test_max_turns_truncates():
    env = agentrl.make("agentrl/Maze-v0", max_turns=2)
    env.reset(seed=0)
    env.step("move[up]")
    *_, _terminated, truncated, info = env.step("move[up]")
    assert truncated and info["truncation"] == "max_turns"


def test_fork_is_a_twin_at_the_same_state():
    env = agentrl.make("agentrl/Calculator-v0")
    env.reset(seed=5)
    env.step(env.oracle_action())
    twin = env.fork()
    assert (twin.turn, twin.known, twin.task.id, twin.state_key()) == (env.turn, env.known, env.task.id, env.state_key())
    assert twin.step(twin.oracle_action())[0] == env.step(env.oracle_action())[0]
    twin2 = asyncio.run(env.afork())
    assert twin2.known == env.known


def test_calculator_tools_count_and_evaluate():
    env = agentrl.make("agentrl/Calculator-v0")
    env.reset(seed=1)
    a, b = env.task.data["items"]
    call = '<tool_call>{{"name": "lookup", "arguments": {{"item": "{}"}}}}</tool_call>'
    obs, _, _, _, info = env.step(call.format(a) + call.format(b))
    assert info["tool_calls"] == 2 and obs.count("<tool_response>") == 2
    assert evaluate_arithmetic("2 * (3 + 4) - 10 / 4") == 11.5
    obs, _, _, _, info = env.step('<tool_call>{"name": "calculator", "arguments": {"expression": "__import__(1)"}}</tool_call>')
    assert "Only numbers" in obs and info["tool_calls"] == 1 and info["valid_action"]
    _, reward, terminated, _, info = env.step(f"<answer>{env.answer() + 1}</answer>")
    assert (reward, terminated, info["success"]) == (0.0, True, False)


def test_unknown_id_and_bad_options_name_the_problem():
    with pytest.raises(UnknownEnvError, match="Did you mean: agentrl/Maze-v0"):
        agentrl.make("agentrl/maze-v0")
    with pytest.raises(EnvOptionError, match=r"wall_density: Input should be less than or equal to 0.6"):
        agentrl.make("agentrl/Maze-v0", wall_density=0.9)
    env = agentrl.make("agentrl/Maze-v0")
    with pytest.raises(EnvOptionError, match="unknown reset option"):
        env.reset(options={"task": "x"})
    with pytest.raises(EnvOptionError, match="unknown task_id 'nope'"):
        env.reset(options={"task_id": "nope"})
    with pytest.raises(EnvOptionError, match="unknown split 'val'"):
        env.reset(options={"split": "val"})


def test_async_only_env_runs_through_the_sync_api():
    from agentrl.env import StepOutcome, Task, TaskSet, TextEnv

    class Echo(TextEnv):
        def build_tasks(self):
            return TaskSet([Task(id="a")])

        async def _areset(self, task):
            await asyncio.sleep(0)
            return "start"

        async def _astep(self, action):
            await asyncio.sleep(0)
            return StepOutcome(action.upper(), terminated=action == "stop", success=True)

    env = Echo()
    assert env.reset(seed=0)[0] == "start"
    assert env.step("hi")[0] == "HI"
    assert env.step("stop")[2] is True
    env.close()

    with pytest.raises(TypeError, match="must implement _reset or _areset"):

        class Broken(TextEnv):
            def build_tasks(self):
                return TaskSet([])
