"""``agentrl/WebShop-v0``: a self-contained, WebShop-faithful shopping environment.

* :mod:`~agentrl_envs.webshop.catalog` — synthetic catalog in WebShop's schema (seeded, cached).
* :mod:`~agentrl_envs.webshop.goals` — goals by WebShop's rules, fixed hash splits.
* :mod:`~agentrl_envs.webshop.search` — BM25 search (bm25s), top 50.
* :mod:`~agentrl_envs.webshop.shop` — one catalog + goals + index per process, shared.
* :mod:`~agentrl_envs.webshop.pages` — the page state machine and page model (text and HTML).
* :mod:`~agentrl_envs.webshop.reward` — WebShop's reward formula.
* :mod:`~agentrl_envs.webshop.env` — the gymnasium text env.
* :mod:`~agentrl_envs.webshop.server` — the same shop as a web page (aiohttp).
"""

from agentrl_envs.webshop.env import WebShopConfig, WebShopEnv
from agentrl_envs.webshop.shop import Shop, shared_shop


def register() -> None:
    """Entry point of the ``agentrl.envs`` group."""
    import agentrl

    agentrl.register("agentrl/WebShop-v0", WebShopEnv)


__all__ = ["Shop", "WebShopConfig", "WebShopEnv", "register", "shared_shop"]
