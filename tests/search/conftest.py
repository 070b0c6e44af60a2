"""Session fixtures: the corpus and its BM25 index are loaded once per test session (built on the
first run and cached on disk under $AGENTRL_CACHE/search, so later sessions only load them)."""

import pytest
from agentrl_envs.search.retrieval import shared_retriever

import agentrl


@pytest.fixture(scope="session")
def retriever():
    return shared_retriever()


@pytest.fixture(scope="session")
def env_tasks(retriever):
    return agentrl.make("agentrl/SearchQA-v0").tasks


@pytest.fixture
def env(env_tasks):
    env = agentrl.make("agentrl/SearchQA-v0")
    env._tasks = env_tasks  # the task set is cached per process anyway; skip the lookup
    yield env
    env.close()
