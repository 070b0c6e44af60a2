"""The browser tier on real MiniWoB++ pages in a real headless Chromium."""

import os
import re

import psutil
import pytest
from agentrl_envs.gui.browser.chromium import Browser, BrowserCrashed, BrowserTimeout, chromium_pids
from agentrl_envs.gui.browser.env import PAGES, MiniWoBEnv
from agentrl_envs.gui.browser.pool import BrowserPool
from agentrl_envs.gui.sim.families import FAMILIES as SIM_FAMILIES
from gymnasium.utils.env_checker import check_env

import agentrl
from agentrl.env import OracleAgent, aplay_episode
from agentrl.sandbox import SandboxCrashed

pytestmark = pytest.mark.browser


def ids(obs: str, role: str, name: str | None = None) -> list[int]:
    label = f' "{name}"' if name is not None else ""
    return [int(i) for i in re.findall(rf"\[(\d+)\] {role}{re.escape(label)}", obs)]


def test_registered_families_and_contract(browser_pool):
    assert len(PAGES) >= 20
    assert set(SIM_FAMILIES) <= set(PAGES)  # every Python-tier family also runs in the browser
    assert "agentrl/MiniWoB-login-user-v0" in agentrl.list_envs()
    env = MiniWoBEnv(pool=browser_pool, families=["enter-text"], instances_per_family=5)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


async def test_oracle_solves_every_family(browser_pool):
    env = MiniWoBEnv(pool=browser_pool, instances_per_family=1)
    try:
        for task in env.tasks:
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task.id)
            assert trajectory.success and trajectory.final_reward == 1.0, task.id
    finally:
        await env.aclose()


async def test_same_task_same_page_and_fork_replays(browser_pool):
    env = MiniWoBEnv(pool=browser_pool, families=["login-user"])
    try:
        first, info = await env.areset(options={"task_id": "login-user/0007"})
        again, info2 = await env.areset(seed=123, options={"task_id": "login-user/0007"})
        assert first == again and info["state_key"] == info2["state_key"]
        await env.astep(env.oracle_action())
        twin = await env.afork()
        try:
            assert twin.render() == env.render() and twin.state_key() == env.state_key()
            assert twin.browser is not env.browser
            await twin.astep('type(2, "someone-else")')
            assert twin.state_key() != env.state_key()
        finally:
            await twin.aclose()
    finally:
        await env.aclose()


async def test_raw_reward_and_invalid_actions(browser_pool):
    env = MiniWoBEnv(pool=browser_pool, families=["click-button"], screenshot=True)
    try:
        for task in env.tasks:  # find an instance with a wrong button to press
            obs, info = await env.areset(options={"task_id": task.id})
            target = re.search(r'Click on the "(.*)" button', obs).group(1)
            wrong = [i for i, name in re.findall(r'\[(\d+)\] button "(.*)"', obs) if name != target]
            if wrong:
                break
        assert env.screenshot.startswith(b"\x89PNG")
        obs, reward, terminated, truncated, info = await env.astep("click(999)")
        assert not info["valid_action"] and "no element [999]" in obs and not terminated
        obs, reward, terminated, _truncated, info = await env.astep(f"click({wrong[0]})")
        # MiniWoB raw reward for a wrong button is -1, with no time decay.
        assert (reward, terminated, info["success"], info["tool_calls"]) == (-1.0, True, False, 1)
        assert info["screenshot"].startswith(b"\x89PNG")
    finally:
        await env.aclose()


async def test_crashed_browser_is_typed_and_replaced(browser_pool):
    env = MiniWoBEnv(pool=browser_pool, families=["enter-text"])
    try:
        await env.areset(options={"task_id": "enter-text/0001"})
        replaced = browser_pool.stats()["replaced"]
        for pid in env.browser.pids[1:]:  # kill Chromium under the live driver
            psutil.Process(pid).kill()
        with pytest.raises(BrowserCrashed) as caught:
            await env.astep("click(1)")
        assert isinstance(caught.value, SandboxCrashed)  # the rollout engine's infra failure type
        assert env.browser is None and browser_pool.stats()["replaced"] == replaced + 1
        obs, _info = await env.areset(options={"task_id": "enter-text/0001"})
        assert "Task: Enter" in obs
    finally:
        await env.aclose()


def test_hung_browser_is_killed_and_nothing_leaks():
    def alive(pids):
        return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    before = set(chromium_pids(ancestor=os.getpid()))  # the session pool's browsers
    pool = BrowserPool(size=1)
    try:
        browser = pool.acquire()
        hung_pids = browser.pids
        assert len(hung_pids) >= 3  # chromedriver, Chromium, its helpers
        with pytest.raises(BrowserTimeout):
            browser.run(lambda driver: driver.execute_script("while (true) {}"), timeout=1.0)
        assert not browser.alive() and alive(hung_pids) == []
        pool.release(browser)
        replacement = pool.acquire()
        assert replacement is not browser and replacement.run(lambda d: d.execute_script("return 1 + 1")) == 2
        replacement_pids = replacement.pids
        pool.release(replacement)
    finally:
        pool.close()
    assert alive(replacement_pids) == []
    assert set(chromium_pids(ancestor=os.getpid())) <= before


def test_missing_chromium_is_a_clear_error():
    from agentrl_envs.gui.browser.chromium import BrowserConfig, BrowserUnavailable

    with pytest.raises(BrowserUnavailable, match="scripts/chromium_setup.sh"):
        Browser(BrowserConfig(chrome_binary="/nonexistent/chromium"))
