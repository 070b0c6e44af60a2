"""`agentrl eval` with model-backed agents: a local transformers model, and a real
OpenAI-compatible HTTP server (agentrl's own, serving a tiny model) at token and chat level."""

import asyncio
import json
import socket
import subprocess
import sys
import threading

import pytest
from aiohttp import web

from agentrl.policy.hf import HFPolicy
from agentrl.policy.serve import build_app

EVAL = [sys.executable, "-m", "agentrl.cli", "eval", "run", "--env", "agentrl/Maze-v0", "--max-tasks", "3",
        "--max-tokens", "12", "--concurrency", "3"]


@pytest.fixture(scope="module")
def server(model_dir):
    """agentrl's OpenAI-compatible server on a free loopback port, in a background thread."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    policy = HFPolicy(AutoModelForCausalLM.from_pretrained(model_dir).eval(), tokenizer)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(policy, tokenizer, model_name="tiny"))
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    yield f"http://127.0.0.1:{port}/v1"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run_eval(*args):
    return subprocess.run([*EVAL, *args], capture_output=True, text=True, timeout=300, check=False)


def episodes(out_dir):
    return [json.loads(line) for line in (out_dir / "episodes.jsonl").read_text().splitlines()]


def test_hf_agent_records_exact_tokens(model_dir, tmp_path):
    result = run_eval("--agent", "hf", "--model", str(model_dir), "-O", str(tmp_path))
    assert result.returncode == 0, result.stderr
    runs = episodes(tmp_path)
    assert len(runs) == 3 and all(r["status"] in ("ok", "truncated") for r in runs)
    steps = [s for r in runs for s in r["steps"]]
    assert steps and all(s["completion_token_ids"] and len(s["logprobs"]) == len(s["completion_token_ids"]) for s in steps)
    assert (tmp_path / "report.html").exists()


def test_openai_agent_against_a_real_server(server, model_dir, tmp_path):
    result = run_eval("--agent", "openai", "--base-url", server, "--model", "tiny", "--tokenizer", str(model_dir),
                      "-O", str(tmp_path))
    assert result.returncode == 0, result.stderr
    runs = episodes(tmp_path)
    assert len(runs) == 3 and not [r for r in runs if r["status"] == "infra_error"]
    assert all(s["completion_token_ids"] for r in runs for s in r["steps"])


def test_openai_chat_agent_against_a_real_server(server, tmp_path):
    result = run_eval("--agent", "openai-chat", "--base-url", server, "--model", "tiny", "-O", str(tmp_path))
    assert result.returncode == 0, result.stderr
    runs = episodes(tmp_path)
    assert len(runs) == 3 and not [r for r in runs if r["status"] == "infra_error"]
    assert all(s["completion_token_ids"] == [] for r in runs for s in r["steps"])  # chat mode has no token ids


def test_unreachable_server_and_bad_model_path_fail_fast_with_a_reason(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    result = run_eval("--agent", "openai-chat", "--base-url", f"http://127.0.0.1:{closed_port}", "--model", "m",
                      "-O", str(tmp_path / "a"))
    assert result.returncode != 0 and "cannot reach the server at" in result.stderr
    result = run_eval("--agent", "hf", "--model", str(tmp_path / "nope"), "-O", str(tmp_path / "b"))
    assert result.returncode != 0 and "does not exist" in result.stderr
    result = run_eval("--agent", "hf", "-O", str(tmp_path / "c"))
    assert result.returncode != 0 and "--model is required" in result.stderr


def test_a_model_name_the_server_does_not_serve_fails_fast(server, tmp_path):
    """A typo in --model: the server lists what it serves, so the run stops before any episode."""
    result = run_eval("--agent", "openai-chat", "--base-url", server, "--model", "tinyy", "-O", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"Error: the server at {server} serves tiny, not --model 'tinyy'"
    assert not (tmp_path / "episodes.jsonl").exists()
