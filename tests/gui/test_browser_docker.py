"""The browser tier with its browsers inside Docker sandbox containers (real engine, real Chromium).

Skipped, with the reason, only where no Docker engine answers or the browser image is not built
(outside CI; CI builds it in scripts/docker_setup.sh, so there a missing image fails).
"""

import functools
import os

import pytest
from agentrl_envs.gui.browser.chromium import (
    BrowserConfig,
    BrowserCrashed,
    BrowserTimeout,
    BrowserUnavailable,
    launch,
)
from agentrl_envs.gui.browser.container import HTML_MOUNT, PAGES_MOUNT, DockerBrowser, browser_containers
from agentrl_envs.gui.browser.env import MiniWoBEnv
from agentrl_envs.gui.browser.pool import BrowserPool

from agentrl.env import OracleAgent, aplay_episode
from agentrl.sandbox import SandboxCrashed, SandboxUnavailable

pytestmark = [pytest.mark.docker, pytest.mark.browser]

# Generous start deadline: a container start on a loaded 2-core machine can take many seconds.
CONFIG = BrowserConfig(backend="docker", start_timeout_s=120)


@functools.cache
def skip_reason() -> str | None:
    from agentrl.sandbox.image import docker_client

    try:
        client = docker_client()
    except SandboxUnavailable as exc:
        return f"no Docker engine reachable: {exc}"
    try:
        client.images.get(CONFIG.image)
    except Exception:  # noqa: BLE001 - ImageNotFound
        return f"image {CONFIG.image} not built (run `agentrl sandbox build --variant browser`)"
    return None


def mine() -> set[str]:
    """Browser containers owned by this test process."""
    return {c.id for c in browser_containers() if c.labels.get("agentrl.pid") == str(os.getpid())}


@pytest.fixture(scope="module")
def docker_pool():
    if skip_reason():
        if os.environ.get("CI"):
            pytest.fail(f"CI should have built the browser image (scripts/docker_setup.sh): {skip_reason()}")
        pytest.skip(skip_reason())
    pool = BrowserPool(size=1, config=CONFIG)
    yield pool
    pool.close()


async def test_oracle_solves_families_inside_the_container(docker_pool):
    env = MiniWoBEnv(
        pool=docker_pool, families=["login-user", "click-checkboxes", "choose-list", "email-inbox-delete", "drag-box",
                                    "use-slider"],
        instances_per_family=1,
    )  # fmt: skip
    try:
        for task in env.tasks:
            trajectory = await aplay_episode(env, OracleAgent(env), seed=0, task_id=task.id)
            assert trajectory.success and trajectory.final_reward == 1.0, task.id
        browser = env.browser
        assert isinstance(browser, DockerBrowser) and browser.page_root == PAGES_MOUNT
        attrs = browser.container.attrs
        host = attrs["HostConfig"]
        # No network at all, read-only root, no capabilities, not root, pages mounted read-only.
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
        assert attrs["Config"]["User"] == "1000:1000"
        assert attrs["Config"]["Labels"]["agentrl.kind"] == "browser"
        # The chromedriver socket and its folder are the owner's only (no other host user drives it).
        sock = os.path.join(browser._sockdir, "chromedriver.sock")
        assert os.stat(browser._sockdir).st_mode & 0o077 == 0 and os.stat(sock).st_mode & 0o077 == 0
        pages = [m for m in attrs["Mounts"] if m["Destination"] == HTML_MOUNT]
        assert len(pages) == 1 and pages[0]["RW"] is False
        # The only network interface Chromium has is the container's own loopback.
        code, out = browser.container.exec_run(["cat", "/proc/net/dev"])
        interfaces = [line.split(":")[0].strip() for line in out.decode().splitlines()[2:]]
        assert code == 0 and interfaces == ["lo"]
    finally:
        await env.aclose()


async def test_killed_container_is_typed_and_replaced(docker_pool):
    env = MiniWoBEnv(pool=docker_pool, families=["enter-text"])
    try:
        await env.areset(options={"task_id": "enter-text/0001"})
        replaced = docker_pool.stats()["replaced"]
        dead = env.browser.container
        dead.kill()
        with pytest.raises(BrowserCrashed) as caught:
            await env.astep("click(1)")
        assert isinstance(caught.value, SandboxCrashed)  # masked as an infra failure by the rollout engine
        assert env.browser is None and docker_pool.stats()["replaced"] == replaced + 1
        assert dead.id not in mine()  # the dead container was removed
        obs, _info = await env.areset(options={"task_id": "enter-text/0001"})
        assert "Task: Enter" in obs and env.browser.container.id != dead.id
    finally:
        await env.aclose()


def test_hung_browser_container_is_removed_and_nothing_leaks(docker_pool):
    before = mine()  # the module pool's idle browser
    pool = BrowserPool(size=1, config=CONFIG)
    try:
        browser = pool.acquire()
        assert len(mine() - before) == 1
        with pytest.raises(BrowserTimeout):
            browser.run(lambda driver: driver.execute_script("while (true) {}"), timeout=2.0)
        assert not browser.alive() and mine() == before
        pool.release(browser)
        replacement = pool.acquire()
        assert replacement.run(lambda d: d.execute_script("return 1 + 1")) == 2
        assert len(mine() - before) == 1
        pool.release(replacement)
    finally:
        pool.close()
    assert mine() == before


def test_missing_image_is_a_clear_error(docker_pool):
    before = mine()
    with pytest.raises(BrowserUnavailable, match="agentrl sandbox build --variant browser"):
        launch(BrowserConfig(backend="docker", image="agentrl-no-such-image:latest"))
    assert mine() == before
