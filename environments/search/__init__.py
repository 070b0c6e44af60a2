"""Search QA (Search-R1 style): multi-hop questions over an offline corpus with shared BM25.

* ``agentrl/SearchQA-v0`` — every question source (Wikipedia identification, countries, the
  fictional world, the hand-written set); ``split="test"`` includes the hand-written set.
* ``agentrl/SearchQA-MultiHop-v0`` — only the generated 2–3-hop sources (countries, world).

See ``environments/search/README.md`` for the protocol, reward, corpus, licence and figures.
"""

import importlib

ENV = "agentrl_envs.search.env:SearchEnv"


def register() -> None:
    """Entry point of the ``agentrl.envs`` group: strings only, nothing is imported until made."""
    import agentrl

    agentrl.register("agentrl/SearchQA-v0", ENV)
    agentrl.register("agentrl/SearchQA-MultiHop-v0", ENV, sources=("countries", "world"))


_EXPORTS = {
    "ClosedBookAgent": "agentrl_envs.search.agents",
    "VerbatimSearchAgent": "agentrl_envs.search.agents",
    "SearchConfig": "agentrl_envs.search.env",
    "SearchEnv": "agentrl_envs.search.env",
    "state_similarity": "agentrl_envs.search.env",
    "Hop": "agentrl_envs.search.questions",
    "Question": "agentrl_envs.search.questions",
    "BM25Retriever": "agentrl_envs.search.retrieval",
    "Hit": "agentrl_envs.search.retrieval",
    "render_hits": "agentrl_envs.search.retrieval",
    "shared_retriever": "agentrl_envs.search.retrieval",
}
__all__ = [
    "BM25Retriever",
    "ClosedBookAgent",
    "Hit",
    "Hop",
    "Question",
    "SearchConfig",
    "SearchEnv",
    "VerbatimSearchAgent",
    "register",
    "render_hits",
    "shared_retriever",
    "state_similarity",
]


def __getattr__(name: str):  # PEP 562: the public names are imported on first use, not by register()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
