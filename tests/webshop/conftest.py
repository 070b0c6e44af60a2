import pytest
from agentrl_envs.webshop.shop import shared_shop


@pytest.fixture(scope="session", autouse=True)
def default_shop():
    """Hold the default shop for the whole session, so test modules do not rebuild it."""
    return shared_shop()
