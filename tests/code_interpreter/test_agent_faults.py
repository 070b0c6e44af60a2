"""Who caused a failure decides how it is scored (the rule: agentrl/errors.py).

The agent's code crashing its interpreter, or the whole sandbox, is an observation and the
episode goes on; a sandbox that the host killed, or that stopped answering, is an InfraError.
Real kernels on the local backend, and on docker where an engine answers.
"""

import asyncio
import contextlib

import psutil
import pytest
from agentrl_envs.code_interpreter import CodeMathEnv
from agentrl_envs.code_interpreter.pools import on_pool_loop

import agentrl
from agentrl.errors import InfraError
from agentrl.sandbox import CodeCrashed, SandboxCrashed, create

# A 512 MB limit makes the memory bomb die quickly on both backends.
SANDBOX = {"memory_mb": 512}

CRASHES = {
    "os_exit": ("import os\nos._exit(3)", "exit code 3"),
    "segfault": ("import ctypes\nctypes.string_at(0)", "killed by signal SIGSEGV"),
    "killpg": ("import os\nos.killpg(0, 9)", "killed by signal SIGKILL"),
    "memory_bomb": ("x = []\nwhile True:\n    x.append(bytearray(10**8))", None),
}


def math_env(backend, **options) -> CodeMathEnv:
    options = {"per_family": 20, "families": ["chain_sum"], "sandbox_options": SANDBOX, **options}
    return agentrl.make("agentrl/CodeMath-v0", backend=backend, **options)


def server_process(sandbox) -> psutil.Process:
    """The in-sandbox server of a local sandbox (the backend's own child may be a bwrap wrapper)."""
    tree = psutil.Process(sandbox.proc.pid)
    for proc in [tree, *tree.children(recursive=True)]:
        argv = proc.cmdline()
        if "agentrl_sandboxes.server" in argv and "bwrap" not in argv[0]:
            return proc
    raise AssertionError("no sandbox server process found")


def cell(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.mark.parametrize("case", list(CRASHES))
async def test_code_that_crashes_its_interpreter_is_an_observation_and_the_episode_goes_on(backend, case):
    code, how = CRASHES[case]
    env = math_env(backend)
    try:
        await env.areset(seed=0)
        gold = env.task.data["answer"]
        await env.astep(cell("kept = 41"))
        obs, reward, terminated, truncated, info = await env.astep(cell(f"print('before', flush=True)\n{code}"))
        assert (reward, terminated, truncated, info["valid_action"]) == (0.0, False, False, True)
        execution = info["execution"]
        if case == "memory_bomb" and execution["outcome"] == "error":  # the allocator said no first
            assert "MemoryError" in obs
        else:
            assert execution["outcome"] == "crashed" and not execution["sandbox_lost"]
            assert "your code crashed the Python interpreter" in obs and "variables and imports are lost" in obs
            assert how is None or f"({how})" in obs
            assert env.cells == []  # the state key forgets the lost kernel state
            obs, *_ = await env.astep(cell("print('kept' in globals())"))
            assert obs == "<interpreter>\nFalse\n</interpreter>"  # a fresh kernel, state lost
        # The episode goes on and is scored: the agent can still solve it.
        obs, reward, terminated, _, info = await env.astep(f"\\boxed{{{gold}}}")
        assert (reward, terminated, info["success"]) == (1.0, True, True)
    finally:
        await env.aclose()


async def test_code_that_kills_the_sandbox_server_gets_a_fresh_sandbox():
    # Local backend only: in a container the server is PID 1, which signals from inside cannot kill.
    env = math_env("local")
    try:
        await env.areset(seed=0)
        await env.astep(cell("kept = 1"))
        pool = await env.pool()
        replaced = pool.stats()["replaced"]
        dead = env._sandbox
        obs, reward, terminated, truncated, info = await env.astep(cell("import os\nos.kill(os.getppid(), 9)"))
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["execution"] == {"outcome": "crashed", "exit_code": None, "sandbox_lost": True}
        assert "your code crashed the whole sandbox (its server exited)" in obs
        obs, *_ = await env.astep(cell("print(1 + 1, 'kept' in globals())"))
        assert obs == "<interpreter>\n2 False\n</interpreter>"
        assert env._sandbox is not dead and not dead.alive
        assert pool.stats()["replaced"] == replaced + 1
    finally:
        await env.aclose()


async def test_a_sandbox_killed_by_the_host_is_an_infra_error():
    env = math_env("local")
    try:
        await env.areset(seed=0)
        await env.astep(cell("x = 1"))
        sandbox = psutil.Process(env._sandbox.proc.pid)
        procs = [sandbox, *sandbox.children(recursive=True)]
        for proc in procs:  # the host kills the whole sandbox, and it is dead before the next cell
            with contextlib.suppress(psutil.NoSuchProcess):  # killing the wrapper may take the rest
                proc.kill()
        await on_pool_loop(env._sandbox.proc.wait())
        psutil.wait_procs(procs, timeout=10)
        await asyncio.sleep(0.2)  # the client's loop sees the connection close
        with pytest.raises(SandboxCrashed) as caught:
            await env.astep(cell("print(x)"))
        assert isinstance(caught.value, InfraError) and not isinstance(caught.value, CodeCrashed)
        assert env.turn == 1  # the failed step is not an agent turn
    finally:
        await env.aclose()


async def test_a_sandbox_that_stops_answering_is_a_host_side_timeout(monkeypatch):
    monkeypatch.setattr("agentrl.sandbox.base.CALL_SLACK", 1.0)
    sb = await create("local")
    try:
        server = server_process(sb)
        server.suspend()  # alive, but silent: the host gives up after the slack
        with pytest.raises(SandboxCrashed, match="stopped answering") as caught:
            await sb.run_code("1", timeout=1)
        assert isinstance(caught.value, InfraError) and not caught.value.server_exited
        server.resume()
    finally:
        await sb.close()


async def test_a_submission_that_kills_the_grading_sandbox_fails_its_tests():
    env = agentrl.make("agentrl/HumanEval-v0", backend="local")
    try:
        await env.areset(seed=0)
        obs, reward, terminated, _, info = await env.astep(
            "<answer>```python\nimport os\nos.kill(os.getppid(), 9)\n```</answer>"
        )
        assert (reward, terminated, info["success"]) == (0.0, True, False)
        assert obs == "Hidden tests failed: the submission crashed the grading sandbox."
    finally:
        await env.aclose()


@pytest.mark.parametrize(
    "action",
    [
        cell("s = '\ud800'"),  # a raw lone surrogate in the text
        '<tool_call>{"name": "python", "arguments": {"code": "s = \'\\ud800\'"}}</tool_call>',  # JSON escape
        '<tool_call>{"name": "python", "arguments": {"code": "1", "x": ' + "[" * 5000 + "]" * 5000 + "}}</tool_call>",
    ],
    ids=["raw_surrogate", "json_surrogate", "deep_json"],
)
async def test_unreadable_actions_are_invalid_actions(action):
    env = math_env("local")
    try:
        await env.areset(seed=0)
        obs, _reward, terminated, truncated, info = await env.astep(action)
        assert (terminated, truncated, info["valid_action"]) == (False, False, False)
        assert obs.startswith("Error: ") and ("lone surrogate U+D800" in obs or "nested too deeply" in obs)
    finally:
        await env.aclose()


@pytest.mark.parametrize("exit_code", ["import os\nos._exit(0)", "import sys\nsys.exit(0)", "quit()"])
async def test_a_submission_that_exits_early_with_status_0_fails(exit_code):
    """Status 0 alone is no proof: the tests must have run to the end (the grader's token)."""
    env = agentrl.make("agentrl/HumanEval-v0", backend="local")
    try:
        await env.areset(seed=0)
        obs, reward, terminated, _, info = await env.astep(f"<answer>```python\n{exit_code}\n```</answer>")
        assert (reward, terminated, info["success"]) == (0.0, True, False)
        assert obs == "Hidden tests failed: the program ended before the tests finished."
        # The same task with the canonical solution passes through the same grader.
        await env.areset(seed=0)
        obs, reward, *_ = await env.astep(f"<answer>```python\n{env.task.data['prompt']}{env.task.data['canonical_solution']}```</answer>")
        assert (obs, reward) == ("All hidden tests passed.", 1.0)
    finally:
        await env.aclose()


@pytest.mark.parametrize(
    "code",
    [
        "raise ValueError(chr(0xD800))",
        "class A:\n    def __repr__(self):\n        return chr(0xDFFF)\nA()",
        "from IPython.display import display\ndisplay({'text/plain': chr(0xD800)}, raw=True)",
    ],
    ids=["exception_message", "repr", "display"],
)
async def test_code_whose_output_holds_a_lone_surrogate_is_an_observation(backend, code):
    env = math_env(backend)
    try:
        await env.areset(seed=0)
        obs, _reward, terminated, _truncated, info = await env.astep(cell(code))
        assert info["valid_action"] and not terminated and "\ud800" not in obs and "\udfff" not in obs
        assert ("ValueError: \ufffd" in obs) or ("Out: \ufffd" in obs) or ("[displayed: text/plain]" in obs)
        obs, *_ = await env.astep(cell("print(6 * 7)"))
        assert obs == "<interpreter>\n42\n</interpreter>"
    finally:
        await env.aclose()


@pytest.mark.parametrize(
    "code",
    [
        "from IPython.display import display\ndisplay({'image/png': 123}, raw=True)",
        "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'{\"outputs\": 5}\\n')\n    except OSError:\n        pass",
    ],
    ids=["display_not_text", "forged_reply"],
)
async def test_code_whose_output_the_sandbox_cannot_read_is_an_observation(code):
    env = math_env("local")
    try:
        await env.areset(seed=0)
        obs, _, terminated, _, info = await env.astep(cell(code))
        assert info["valid_action"] and not terminated
        assert "OutputError: the cell produced output the sandbox could not read" in obs
        *_, info = await env.astep(cell("print(6 * 7)"))  # the episode goes on (a forged reply may
        assert info["execution"]["outcome"] == "ok"  # shift this kernel's replies: the code's own mess)
    finally:
        await env.aclose()
