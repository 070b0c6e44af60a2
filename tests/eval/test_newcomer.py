"""What a newcomer meets first: the README's eval example and a quiet `eval run --agent hf`."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
