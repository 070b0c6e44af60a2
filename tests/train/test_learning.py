"""A short run of the embedded default (SFT warm start, then GiGPO) raises success above its start."""

import json
from pathlib import Path

import pytest

from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer


@pytest.mark.slow
def test_short_gigpo_run_raises_success_over_the_sft_start(tmp_path):
    config = load_config(overrides=[
        f"output_dir={tmp_path}",
        "steps=10",
        "eval.every=5",
        "eval.episodes=64",
        "checkpoint.every=10",
        "tensorboard=false",
    ])
    summary = Trainer(config, progress=False, log=lambda *_: None).run()
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    evals = [r["eval/success"] for r in records if "eval/success" in r]
    assert len(evals) == 3  # step 0 (after SFT), 5, 10
    start = evals[0]
    assert 0.0 < start < 0.6, "the warm start should sometimes succeed and leave room to learn"
    assert summary["final_success"] >= start + 0.1, evals
