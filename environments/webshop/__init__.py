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

import importlib


def register() -> None:
    """Entry point of the ``agentrl.envs`` group: a string, nothing is imported until made."""
    import agentrl

    agentrl.register("agentrl/WebShop-v0", "agentrl_envs.webshop.env:WebShopEnv")


_EXPORTS = {
    "WebShopConfig": "agentrl_envs.webshop.env",
    "WebShopEnv": "agentrl_envs.webshop.env",
    "Shop": "agentrl_envs.webshop.shop",
    "shared_shop": "agentrl_envs.webshop.shop",
}
__all__ = ["Shop", "WebShopConfig", "WebShopEnv", "register", "shared_shop"]


def __getattr__(name: str):  # PEP 562: the public names are imported on first use, not by register()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
