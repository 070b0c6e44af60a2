"""Heavy env services once per node: env workers on one machine that open the search env's BM25
index at the same moment on a cold cache build it once (the others wait and load it)."""

import multiprocessing

import pytest

pytest.importorskip("bm25s", reason="the search env's BM25 index needs bm25s")


def open_index(cache: str, barrier, results) -> None:
    """One env worker's process: open the default index the moment every worker is ready."""
    import os

    os.environ["AGENTRL_CACHE"] = cache
    from agentrl_envs.search.corpus import load_corpus
    from agentrl_envs.search.retrieval import BM25Retriever

    corpus = load_corpus()  # before the barrier: the race is on the index only
    barrier.wait()
    results.put(BM25Retriever.open(corpus).build_seconds is not None)


@pytest.mark.slow
def test_workers_on_one_node_build_the_search_index_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = 3
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=open_index, args=(str(tmp_path), barrier, results)) for _ in range(workers)]
    for p in processes:
        p.start()
    built = sorted(results.get(timeout=300) for _ in processes)
    for p in processes:
        p.join(timeout=60)
    assert built == [False, False, True]  # one build; the others loaded its cache
    assert [p.exitcode for p in processes] == [0, 0, 0]
