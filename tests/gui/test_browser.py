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
        obs, _reward, terminated, _truncated, info = await env.astep("click(999)")
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
        hung_pids, profiles = browser.pids, [browser._profile]
        assert len(hung_pids) >= 3  # chromedriver, Chromium, its helpers
        with pytest.raises(BrowserTimeout):
            browser.run(lambda driver: driver.execute_script("while (true) {}"), timeout=1.0)
        assert not browser.alive() and alive(hung_pids) == []
        pool.release(browser)
        replacement = pool.acquire()
        assert replacement is not browser and replacement.run(lambda d: d.execute_script("return 1 + 1")) == 2
        replacement_pids = replacement.pids
        profiles.append(replacement._profile)
        pool.release(replacement)
    finally:
        pool.close()
    assert alive(replacement_pids) == []
    assert [p for p in profiles if os.path.exists(p)] == []  # no Chromium profile left in /tmp
    assert set(chromium_pids(ancestor=os.getpid())) <= before


def test_missing_chromium_is_a_clear_error():
    from agentrl_envs.gui.browser.chromium import BrowserConfig, BrowserUnavailable

    with pytest.raises(BrowserUnavailable, match="scripts/chromium_setup.sh"):
        Browser(BrowserConfig(chrome_binary="/nonexistent/chromium"))


def boxes(obs: str, role: str) -> dict[str, list[int]]:
    return {name: [int(v) for v in box.split(",")]
            for name, box in re.findall(rf'\] {role} "([^"]*)" box=\[([\d,]+)\]', obs)}


@pytest.mark.slow
async def test_pointer_actions_on_real_pages(browser_pool):
    env = MiniWoBEnv(pool=browser_pool, families=["drag-box", "click-test-2"])
    try:
        obs, _ = await env.areset(options={"task_id": "drag-box/0001"})
        small, large = boxes(obs, "text")["s"], boxes(obs, "text")["L"]
        # jQuery UI moves the grabbed box with the pointer, pixel for pixel (the sim's model).
        x, y = small[0] + 5, small[1] + 5
        obs, reward, *_ = await env.astep(f"drag({x}, {y}, {x + 7}, {y - 11})")
        assert boxes(obs, "text")["s"] == [small[0] + 7, small[1] - 11, 28, 28] and reward == 0.0
        assert boxes(obs, "text")["L"] == large
        obs, *_, info = await env.astep("click_at(170, 20)")
        assert "outside the page" in obs and not info["valid_action"]

        obs, _ = await env.areset(options={"task_id": "click-test-2/0001"})
        two = boxes(obs, "button")["TWO"]
        _, reward, terminated, _, info = await env.astep("click_at(1, 1)")  # the task bar: nothing
        assert (reward, terminated, info["valid_action"]) == (0.0, False, True)
        _, reward, terminated, _, _ = await env.astep(f"click_at({two[0] + 38}, {two[1] + 38})")
        assert (reward, terminated) == (-1.0, True)
    finally:
        await env.aclose()


@pytest.mark.slow
async def test_sliders_sim_matches_the_real_widget(browser_pool):
    # The same gestures on the real jQuery UI sliders and on the Python ones set up with the
    # page's ranges, orientation and length: the same values and handle boxes after every action.
    import numpy as np
    from agentrl_envs.gui.actions import parse_action
    from agentrl_envs.gui.sim.families import UseSlider, UseSlider2

    read = "return $('.ui-slider').map(function () { var s = $(this); return [[s.slider('option', 'min'), " \
           "s.slider('option', 'max'), s.slider('option', 'orientation'), s.slider('value')]]; }).get();"
    rng = np.random.default_rng(0)
    env = MiniWoBEnv(pool=browser_pool, families=["use-slider", "use-slider-2"])
    try:
        for task_id in ["use-slider/0000", "use-slider/0001", "use-slider/0002", "use-slider/0003",
                        "use-slider-2/0000", "use-slider-2/0001"]:
            await env.areset(options={"task_id": task_id})
            real = await env.browser.arun(lambda d: d.execute_script(read))
            tracks = [n for root in env.roots for n in root.walk() if n.role == "slider"]
            sim = (UseSlider if len(real) == 1 else UseSlider2)(np.random.default_rng(0))
            for slider, (low, high, orientation, value) in zip(sim.sliders, real, strict=True):
                slider.low, slider.high, slider.vertical, slider.value = low, high, orientation == "vertical", value
            if len(real) == 1:
                sim.length = tracks[0].box[3] if sim.slider.vertical else tracks[0].box[2]
            sim.layout()
            assert [s.track.box for s in sim.sliders] == [t.box for t in tracks]
            for _ in range(6):
                slider = sim.sliders[int(rng.integers(len(sim.sliders)))]
                left, top, width, height = slider.track.box
                hx, hy = slider.handle.box[:2]
                u = rng.random()
                if u < 0.4:
                    action = f"click_at({rng.integers(left - 2, left + width + 2)}, {rng.integers(top - 2, top + height + 2)})"
                elif u < 0.75:
                    action = (f"drag({hx + rng.integers(0, 14)}, {hy + rng.integers(0, 14)}, "
                              f"{rng.integers(0, 160)}, {rng.integers(50, 200)})")
                else:
                    action = f'press({slider.handle.id}, "{rng.choice(["Home", "End", "PageUp", "ArrowLeft"])}")'
                await env.astep(action)
                values = [v[3] for v in await env.browser.arun(lambda d: d.execute_script(read))]
                parsed = parse_action(action)
                sim.apply(parsed, slider.handle if parsed.target is not None else None)
                handles = [n.box for root in env.roots for n in root.walk() if n.role == "group"]
                assert (values, handles) == ([s.value for s in sim.sliders], [s.handle.box for s in sim.sliders]), (
                    task_id, action)
    finally:
        await env.aclose()


def test_acquire_beyond_the_pool_size_waits_for_a_release():
    """More envs than browsers (eval's default concurrency 8 against a pool of 4): an acquire
    without a timeout waits for a release; one with a timeout is an infra error after it."""
    import threading
    import time

    from agentrl.errors import InfraError

    pool = BrowserPool(size=1)
    try:
        first = pool.acquire()
        got = []
        waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and got == []  # still waiting: the one slot is leased
        with pytest.raises(InfraError, match="pool size 1"):
            pool.acquire(timeout=0.2)
        pool.release(first)
        waiter.join(timeout=30)
        assert got == [first]  # the warm browser, handed over
        pool.release(first)
    finally:
        pool.close()


async def test_a_cancelled_acquire_gives_its_browser_back():
    """Ctrl-C during an eval cancels envs still waiting for a browser (or starting one): the
    browser their thread gets after all goes straight back to the pool, so its slot is not lost,
    the next waiter is served and no thread waits forever (which hung the interpreter's exit)."""
    import asyncio

    pool = BrowserPool(size=1)
    try:
        held = await pool.aacquire()
        waiting = asyncio.ensure_future(pool.aacquire(timeout=20))  # timeouts: a failure here fails, never hangs
        await asyncio.sleep(0.2)
        waiting.cancel()  # an env cancelled while it waits: its thread still waits for the slot
        with pytest.raises(asyncio.CancelledError):
            await waiting
        pool.release(held)  # the cancelled waiter's thread takes the slot... and must give it back
        assert await pool.aacquire(timeout=10) is held  # the warm browser
        assert pool.stats() | {"idle": None} == {"size": 1, "idle": None, "leased": 1, "started": 1, "replaced": 0}
        pool.release(held)
    finally:
        pool.close()
