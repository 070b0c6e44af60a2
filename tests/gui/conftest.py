import os

import pytest
from agentrl_envs.gui.browser.chromium import BrowserConfig


@pytest.fixture(scope="session")
def browser_pool():
    """One pool of real Chromium browsers for the whole browser test session."""
    config = BrowserConfig()
    if not (os.path.exists(config.chrome_binary) and os.path.exists(config.chromedriver)):
        if os.environ.get("CI"):
            pytest.fail("Chromium missing in CI: scripts/chromium_setup.sh should have installed it")
        pytest.skip("Chromium not installed (run scripts/chromium_setup.sh)")
    from agentrl_envs.gui.browser.pool import BrowserPool

    pool = BrowserPool(size=2, config=config)
    yield pool
    pool.close()
