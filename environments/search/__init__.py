"""Search QA (Search-R1 style): multi-hop questions over an offline corpus with shared BM25.

* ``agentrl/SearchQA-v0`` — every question source (Wikipedia identification, countries, the
  fictional world, the hand-written set); ``split="test"`` includes the hand-written set.
* ``agentrl/SearchQA-MultiHop-v0`` — only the generated 2–3-hop sources (countries, world).

See ``environments/search/README.md`` for the protocol, reward, corpus, licence and figures.
"""

from agentrl_envs.search.agents import ClosedBookAgent
from agentrl_envs.search.env import SearchConfig, SearchEnv, state_similarity
from agentrl_envs.search.questions import Hop, Question
from agentrl_envs.search.retrieval import BM25Retriever, Hit, render_hits, shared_retriever


def register() -> None:
    """Entry point of the ``agentrl.envs`` group."""
    import agentrl

    agentrl.register("agentrl/SearchQA-v0", SearchEnv)
    agentrl.register("agentrl/SearchQA-MultiHop-v0", SearchEnv, sources=("countries", "world"))


__all__ = [
    "BM25Retriever",
    "ClosedBookAgent",
    "Hit",
    "Hop",
    "Question",
    "SearchConfig",
    "SearchEnv",
    "register",
    "render_hits",
    "shared_retriever",
    "state_similarity",
]
