"""What a newcomer meets first: the README's eval example and a quiet `eval run --agent hf`."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from agentrl.eval.runner import load_finished
from agentrl.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_evaluates_the_trained_model_on_the_env_it_was_trained_on():
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Evaluate"):].split("```")[1]
    maze = shlex.split(re.search(r'MAZE="([^"]+)"', block).group(1))
    options = dict(maze[i + 1].split("=") for i, arg in enumerate(maze) if arg == "-e")
    trained = TrainConfig()
    assert {k: json.loads(v) for k, v in options.items()} == trained.env.options
    hf = shlex.split(next(line for line in block.splitlines() if "--agent hf" in line))
    assert "$MAZE" in hf and hf[hf.index("--model") + 1] == "runs/default/final"
    assert float(hf[hf.index("--temperature") + 1]) > 0  # -k 5 at temperature 0: 5 identical samples
    assert int(hf[hf.index("--max-tokens") + 1]) == trained.rollout.max_tokens
    # agentrl serve names the model by its path, and eval refuses a --model the server does not list
    serve = shlex.split(next(line for line in block.splitlines() if line.startswith("agentrl serve")))
    http = shlex.split(block[block.index("--agent openai "):].split(" -o ")[0].replace("\\\n", " "))
    assert http[http.index("--model") + 1] == serve[serve.index("--model") + 1] == "runs/default/final"


@pytest.mark.slow
def test_an_hf_eval_prints_our_lines_only(tmp_path, model, tokenizer):
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    out = subprocess.run(
        [sys.executable, "-m", "agentrl.cli", "eval", "run", "--env", "agentrl/Maze-v0", "-e", "size=3",
         "--agent", "hf", "--model", str(tmp_path / "model"), "--max-tasks", "2", "--max-tokens", "8",
         "-o", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()  # progress only: no transformers logs, bars or deprecation notices
    assert len(lines) == 2 and all(re.fullmatch(r"eval hf:model on agentrl/Maze-v0: [12]/2 episodes, \d+ s", x) for x in lines)


def _processes_marked(mark: str) -> list[str]:
    """Live processes whose environment carries ``AGENTRL_TEST_MARK=mark`` (a command's descendants,
    even those reparented after it exited)."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get("AGENTRL_TEST_MARK") == mark:
                found.append(f"{proc.pid} {proc.info['name']}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
@pytest.mark.browser
def test_ctrl_c_while_browsers_start_exits_cleanly_and_the_run_resumes(tmp_path):
    """Ctrl-C while envs are starting browsers and waiting for one (8 envs at once, 4 browsers): the
    command exits at once saying how to resume, no Chromium is left, and re-running finishes."""
    out, mark = tmp_path / "run", uuid.uuid4().hex
    cmd = [sys.executable, "-m", "agentrl.cli", "eval", "run", "--env", "agentrl/MiniWoB-v0", "--agent", "random",
           "--max-tasks", "40", "-o", str(out)]  # 40: the run outlasts the wait for the first browser
    env = {**os.environ, "AGENTRL_TEST_MARK": mark}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any("chromedriver" in p for p in _processes_marked(mark)):  # the first browser is starting
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = len(load_finished(out))
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == (f"interrupted: {kept} episodes kept in {out / 'episodes.jsonl'}; "
                                    "run the same command again to resume")
    time.sleep(1)
    assert _processes_marked(mark) == []
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(t.task_id for t in load_finished(out)) == sorted({t.task_id for t in load_finished(out)})
    assert len(load_finished(out)) == 40 and _processes_marked(mark) == []
