"""The code-interpreter envs end to end on real sandboxes (a real jupyter kernel per episode)."""

import asyncio

import numpy as np
import pytest
from agentrl_envs.code_interpreter import CodeMathEnv, HumanEvalEnv
from gymnasium.utils.env_checker import check_env

import agentrl
from agentrl.env import OracleAgent, RandomAgent, aplay_episode

FAMILIES = ["gsm_symbolic", "basic_arithmetic", "chain_sum", "count_primes", "prime_factorization"]


def math_env(backend, **options):
    return agentrl.make("agentrl/CodeMath-v0", backend=backend, per_family=20, **options)


def humaneval_env(backend, **options):
    return agentrl.make("agentrl/HumanEval-v0", backend=backend, **options)


def first_task(env, family):
    return next(t.id for t in env.tasks if t.data["family"] == family)


def test_registered_and_checked_by_gymnasium():
    assert {"agentrl/CodeMath-v0", "agentrl/HumanEval-v0"} <= set(agentrl.list_envs())
    env = math_env("local")
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_same_seed_same_episode_and_fixed_splits():
    a, b = math_env("local"), math_env("local", seed=2024)
    assert a.reset(seed=5) == b.reset(seed=5)
    assert a.tasks.split("test").ids() == b.tasks.split("test").ids()
    assert len(humaneval_env("local").tasks) == 164


async def test_math_oracle_solves_every_family(backend):
    env = math_env(backend)
    try:
        for family in FAMILIES:
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=first_task(env, family))
            assert trajectory.success, (family, [s.observation for s in trajectory.steps])
            # compute, print from kernel state, answer: 3 turns, 2 of them tool calls
            assert [s.tool_calls for s in trajectory.steps] == [1, 1, 0]
            assert trajectory.final_reward == 1.0
    finally:
        await env.aclose()


async def test_humaneval_oracle_passes_hidden_tests(backend):
    env = humaneval_env(backend)
    try:
        for task_id in ("HumanEval/0", "HumanEval/38", "HumanEval/163"):  # 38 has a helper in its prompt
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task_id)
            assert trajectory.success, (task_id, [s.observation for s in trajectory.steps])
    finally:
        await env.aclose()


async def test_random_agent_fails_with_clear_errors():
    env = math_env("local")
    agent = RandomAgent(env, seed=0)
    successes, errors = 0, set()
    try:
        for seed in range(8):
            trajectory = await aplay_episode(env, agent, seed=seed)
            successes += trajectory.success
            errors |= {s.info["error"] for s in trajectory.steps if not s.valid_action}
    finally:
        await env.aclose()
    assert successes <= 1
    assert any("No action found" in e for e in errors)
    assert any("Invalid arguments for python" in e or "Unknown tool" in e for e in errors)


async def test_kernel_keeps_state_across_turns_and_shows_errors(backend):
    env = math_env(backend)
    try:
        await env.areset(seed=0)
        obs, _reward, _term, _trunc, info = await env.astep("```python\nx = 6 * 7\n```")
        assert obs == "<interpreter>\n(no output)\n</interpreter>" and info["tool_calls"] == 1
        obs, *_ = await env.astep('<tool_call>{"name": "python", "arguments": {"code": "x + 1"}}</tool_call>')
        assert obs == "<tool_response>\nOut: 43\n</tool_response>"
        obs, *_, info = await env.astep("```python\ndef f():\n    return x / 0\nprint('before')\nf()\n```")
        assert info["valid_action"] and info["error"] is None  # failing code is a normal observation
        assert obs.startswith("<interpreter>\nbefore\nTraceback (most recent call last):\n")
        assert obs.endswith("ZeroDivisionError: division by zero\n</interpreter>")
        assert "\x1b[" not in obs
    finally:
        await env.aclose()


async def test_long_output_is_clipped_with_a_marker():
    env = math_env("local", output_budget=300)
    try:
        await env.areset(seed=0)
        obs, *_ = await env.astep("```python\nprint('a' * 10000)\n```")
        # 300 - 40 marker room = 260 kept, 130 + 130; 10000 - 260 = 9740 cut
        assert "…(9740 characters truncated)…" in obs
        assert len(obs) < 400
    finally:
        await env.aclose()


async def test_timeout_interrupts_and_keeps_state():
    env = math_env("local", cell_timeout=1.0)
    try:
        await env.areset(seed=0)
        await env.astep("```python\nkept = 'yes'\n```")
        obs, _reward, term, _trunc, info = await env.astep("```python\nprint('start', flush=True)\nwhile True: pass\n```")
        assert info["execution"] == {"outcome": "timeout", "state_kept": True}
        assert not term and info["valid_action"] and info["error"] is None
        assert "start" in obs and "ran longer than 1 s and was interrupted" in obs
        assert "KeyboardInterrupt" not in obs
        obs, *_ = await env.astep("```python\nprint(kept)\n```")
        assert obs == "<interpreter>\nyes\n</interpreter>"
    finally:
        await env.aclose()


async def test_invalid_actions_and_format_penalty():
    env = math_env("local", format_penalty=0.1, max_invalid_actions=2)
    try:
        await env.areset(seed=0)
        obs, reward, term, trunc, info = await env.astep("The answer is 12.")
        assert obs.startswith("Error: No action found") and reward == pytest.approx(-0.1)
        assert not info["valid_action"] and info["tool_calls"] == 0
        obs, reward, _term, trunc, info = await env.astep("```python\nprint(1)")
        assert trunc and info["truncation"] == "invalid_actions" and not info["success"]
    finally:
        await env.aclose()


async def test_wrong_answer_and_normalised_right_answer():
    env = math_env("local")
    try:
        task_id = first_task(env, "gsm_symbolic")
        gold = env.tasks.get(task_id).data["answer"]
        await env.areset(seed=0, options={"task_id": task_id})
        _, reward, term, _, info = await env.astep(f"\\boxed{{{int(gold) + 1}}}")
        assert term and reward == 0.0 and not info["success"]
        await env.areset(seed=0, options={"task_id": task_id})
        _, reward, term, _, info = await env.astep(f"Final: \\boxed{{{gold}.0}}")
        assert reward == 1.0 and info["success"]
        # prime factorisations compare as multisets
        task_id = first_task(env, "prime_factorization")
        factors = env.tasks.get(task_id).data["answer"].split(" × ")
        await env.areset(seed=0, options={"task_id": task_id})
        _, reward, *_ = await env.astep(f"<answer>{'*'.join(reversed(factors))}</answer>")
        assert reward == 1.0
    finally:
        await env.aclose()


async def test_humaneval_grades_in_a_fresh_sandbox_interpreter(backend):
    env = humaneval_env(backend)
    try:
        await env.areset(seed=0, options={"task_id": "HumanEval/0"})
        # Tampering with the episode's kernel cannot change the verdict: grading runs elsewhere.
        await env.astep("```python\ndef check(candidate):\n    return None\n```")
        wrong = "def has_close_elements(numbers, threshold):\n    return False\n"
        _, reward, term, _, info = await env.astep(f"<answer>```python\n{wrong}```</answer>")
        assert term and reward == 0.0 and info["tests"] == "failed: AssertionError"
        # The tests run in the sandbox's work dir, not the host process's.
        await env.areset(seed=0, options={"task_id": "HumanEval/0"})
        spy = "import os\ndef has_close_elements(numbers, threshold):\n    raise RuntimeError(os.getcwd())\n"
        _, _, _, _, info = await env.astep(f'<tool_call>{{"name": "answer", "arguments": {{"answer": {spy!r}}}}}</tool_call>'.replace("'", '"'))
        assert info["tests"].startswith("failed: RuntimeError: /")
        assert info["tests"] != f"failed: RuntimeError: {__import__('os').getcwd()}"
        # A body-only completion (HumanEval's own protocol) is accepted too.
        await env.areset(seed=0, options={"task_id": "HumanEval/2"})
        body = env.task.data["canonical_solution"]
        _, reward, *_ = await env.astep(f"<answer>\n{body}</answer>")
        assert reward == 1.0
    finally:
        await env.aclose()


async def test_fork_replays_cells_into_a_new_kernel():
    env = math_env("local")
    try:
        await env.areset(seed=0, options={"task_id": first_task(env, "count_primes")})
        await env.astep(OracleAgent(env).act(""))
        twin = await env.afork()
        try:
            assert twin.state_key() == env.state_key() and twin.cells == env.cells
            assert twin._sandbox is not env._sandbox
            a = await env.astep("```python\nprint(answer)\n```")
            b = await twin.astep("```python\nprint(answer)\n```")
            assert a[0] == b[0] and a[0] != "<interpreter>\n(no output)\n</interpreter>"
        finally:
            await twin.aclose()
    finally:
        await env.aclose()


async def test_state_key_ignores_whitespace_and_max_turns_truncates():
    a, b = math_env("local", max_turns=2), math_env("local", max_turns=2)
    try:
        await a.areset(seed=0)
        await b.areset(seed=0)
        await a.astep("```python\nx = 1\n\ny = 2\n```")
        await b.astep("```python\nx = 1   \ny = 2\n\n\n```")
        assert a.state_key() == b.state_key()
        _, _, term, trunc, info = await a.astep("```python\nz = 3\n```")
        assert a.state_key() != b.state_key()
        assert trunc and not term and info["truncation"] == "max_turns"
    finally:
        await asyncio.gather(a.aclose(), b.aclose())


def test_concurrent_episodes_share_one_pool():
    async def main():
        envs = [math_env("local") for _ in range(4)]
        trajectories = await asyncio.gather(
            *(aplay_episode(e, OracleAgent(e), seed=i) for i, e in enumerate(envs))
        )
        pools = {id(await e.pool()) for e in envs}
        await asyncio.gather(*(e.aclose() for e in envs))
        return trajectories, pools

    trajectories, pools = asyncio.run(main())
    assert all(t.success for t in trajectories)
    assert len(pools) == 1


def test_random_guess_is_a_number():
    env = CodeMathEnv(per_family=20)
    env.reset(seed=0)
    assert env.random_guess(np.random.default_rng(0)).startswith("\\boxed{")
    he = HumanEvalEnv()
    he.reset(seed=0)
    assert he.random_guess(np.random.default_rng(0)).startswith("<answer>")
    env.close()
    he.close()


@pytest.mark.slow
async def test_oracle_solves_all_humaneval_and_a_math_sample():
    """Every one of the 164 canonical solutions passes its hidden tests in the sandbox."""
    env = humaneval_env("local", pool_size=4)
    math = math_env("local", pool_size=4)
    try:
        failed = [t.id for t in env.tasks if not (await aplay_episode(env, OracleAgent(env), seed=0, task_id=t.id)).success]
        assert failed == []
        sample = [t.id for t in math.tasks][::20]
        failed = [i for i in sample if not (await aplay_episode(math, OracleAgent(math), seed=0, task_id=i)).success]
        assert failed == []
    finally:
        await asyncio.gather(env.aclose(), math.aclose())


def test_sync_envs_on_private_loops_share_the_pool():
    a, b = math_env("local"), math_env("local")
    try:
        a.reset(seed=0)
        b.reset(seed=1)
        assert a.step("```python\nprint(1)\n```")[0] == "<interpreter>\n1\n</interpreter>"
        assert b.step("```python\nprint(2)\n```")[0] == "<interpreter>\n2\n</interpreter>"
        assert a._loop is not b._loop and a._pool is b._pool
    finally:
        a.close()
        b.close()
