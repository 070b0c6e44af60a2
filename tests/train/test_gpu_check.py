"""scripts/gpu_check.py's whole path on CPU (a tiny Qwen2-shaped model, 2 Learner steps), and its
clean refusal without CUDA. Where a GPU is lent the script runs by hand on CUDA (its docstring)."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
ROWS, ROW_TOKENS, VOCAB = 4, 64, 1024  # VOCAB: the script's TINY_QWEN2
STEP = re.compile(
    r"step (\d+): ([\d,]+) tokens/s \(([\d.]+) s for (\d+) tokens\), peak RSS ([\d.]+) GiB \(process, since start\), "
    r"loss ([-+][\d.]+), approx_kl ([\d.e+-]+), grad_norm ([\d.]+)"
)


def run(*args, **env):
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def expected_losses(steps: int) -> list[float]:
    """The script's rows: ids, then one ±1 advantage per row, from default_rng(0), step by step.
    At ratio 1 (behaviour log-probs from the same weights; lr 1e-6 barely moves them) the
    token-mean PPO loss of a mini-batch is −(its rows' mean advantage), every row having the same
    32 completion tokens; 2 mini-batches of 2 rows average to −(the step's mean advantage)."""
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        rng.integers(0, VOCAB, size=(ROWS, ROW_TOKENS))
        losses.append(-float(np.mean([rng.choice([-1.0, 1.0]) for _ in range(ROWS)])))
    return losses


@pytest.mark.slow
def test_gpu_check_runs_its_whole_path_on_cpu_and_refuses_cleanly_without_cuda():
    done = run("--device", "cpu", "--tiny", "--steps", "2", "--rows", str(ROWS), "--row-tokens", str(ROW_TOKENS),
               "--micro-batch-tokens", "128")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^model: random-init tiny Qwen2-shaped, [\d.]+ M parameters, CPU, 1 threads$", done.stdout, re.MULTILINE)
    steps = STEP.findall(done.stdout)
    assert [int(s[0]) for s in steps] == [1, 2], done.stdout
    for (_, rate, seconds, tokens, rss, loss, kl, grad_norm), expected in zip(steps, expected_losses(2), strict=True):
        assert int(tokens) == ROWS * ROW_TOKENS and float(rate.replace(",", "")) > 0 and float(seconds) >= 0
        assert 0 < float(rss) < 16
        assert math.isfinite(float(loss)) and float(loss) == pytest.approx(expected, abs=1e-4)
        assert 0 <= float(kl) < 1e-6  # step 1 starts at ratio 1: the behaviour pass matches the learner's
        assert math.isfinite(float(grad_norm)) and float(grad_norm) > 0

    refused = run(CUDA_VISIBLE_DEVICES="")  # the default asks for CUDA
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [(
        "gpu_check: no CUDA device visible (torch.cuda.is_available() is False); "
        "nothing to check (--device cpu --tiny runs the same path on CPU)"
    )]
