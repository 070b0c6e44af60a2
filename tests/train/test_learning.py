"""Training learns, on tasks whose answer is known (slow; fixed seeds; each a target within a
stated number of RL steps on 2 CPU cores, the optimum beside it). bench/learning.py runs the same
configs over several seeds and draws the curves.

| task | config | steps | start (seed 0) | target | random | optimum |
|---|---|---|---|---|---|---|
| bandit (door 2 pays) | examples/bandit.yaml | 10 | ~0.63 | ≥ 0.8 | 0.5 | 1.0 |
| contextual bandit (door depends on the room) | examples/contextual_bandit.yaml | 10 | ~0.35 | ≥ 0.9 | 0.5 | 1.0 |
| maze (the embedded default) | examples/default.yaml | 10 | ~0.31 | mean of steps 2-10 > start | ~0.2 | 1.0 |
| calculator (multi-turn tools) | examples/calculator.yaml | 20 | 0.41 | mean of steps 10-20 ≥ 0.7 (bench: ≥ 0.8 at 20) | 0.0 | 1.0 |

The warm starts of the bandits imitate *random* valid doors (``sft.demonstrator: random``): they
teach the format, not the answer, so every point above 0.5 is RL's. Rollouts draw from
per-member sampling seeds, so a run repeats its numbers; a long multi-turn run can still drift
(the calculator's check below says how much).
"""

import json
from pathlib import Path

import pytest

from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer

EXAMPLES = Path(__file__).parents[2] / "examples"


def eval_curve(config_name: str, tmp_path, *overrides: str) -> list[float]:
    config = load_config(EXAMPLES / config_name, overrides=[
        f"output_dir={tmp_path}", "tensorboard=false", "checkpoint.every=1000", "eval.greedy=false", *overrides,
    ])
    summary = Trainer(config, progress=False, log=lambda *_: None).run()
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    return [r["eval/success"] for r in records if "eval/success" in r]


@pytest.mark.slow
def test_bandit_reaches_0_8_in_10_steps(tmp_path):
    # Measured (3 seeds): 0.63 -> 0.98-1.0 from step 2 on (~14 s); with init 0.02 and 1 PPO epoch 0.61 -> 0.89.
    curve = eval_curve("bandit.yaml", tmp_path, "steps=10", "eval.every=5")
    assert curve[0] < 0.7, "the random-door warm start should not know the paying door"
    assert curve[-1] >= 0.8, curve


@pytest.mark.slow
def test_contextual_bandit_reaches_0_9_in_10_steps(tmp_path):
    # Measured: 0.343 -> 0.984 at step 10 (1.0 at step 20); the input-independent best is 0.5.
    # With the demos spread evenly over the rooms (64 random doors) the start is 0.625: by chance
    # 35 of the 64 random doors are the paying one (0.547 expected from imitating them).
    curve = eval_curve("contextual_bandit.yaml", tmp_path, "steps=10", "eval.every=10")
    assert curve[0] < 0.7, "the random-door warm start should not know the paying door"
    assert curve[-1] >= 0.9, curve


@pytest.mark.slow
def test_short_gigpo_run_of_the_default_raises_maze_success_over_the_sft_start(tmp_path):
    """The embedded default: 256 fixed evaluation episodes per point (SE ≈ 0.03), the mean of the
    five points after RL starts against the SFT start: a 10-step check. The full 40-step run
    (0.34 → 0.89 over 5 seeds, ≥ 0.8 on each) is measured in agentrl/train/README.md, "The
    embedded default"."""
    import numpy as np

    curve = eval_curve("default.yaml", tmp_path, "steps=10", "eval.every=2", "eval.episodes=256")
    assert len(curve) == 6  # step 0 (after SFT), 2, 4, 6, 8, 10
    start, after = curve[0], float(np.mean(curve[1:]))
    assert 0.0 < start < 0.6, "the warm start should sometimes succeed and leave room to learn"
    assert after > start, curve


@pytest.mark.slow
def test_calculator_sharpens_its_noisy_warm_start_in_20_steps(tmp_path):
    """Multi-turn tools, full context: look the prices up, add them up with the calculator, answer.
    The SFT start solves every task greedily but samples 0.41: its tool-call JSON breaks on about
    one token in 70. RL must sharpen it, and plain PPO cannot here (negative_weight 1: 0.328 at
    step 5, 0.250 at 10, entropy rising); negative_weight 0.1 does. Measured (seed 0): 0.406 ->
    0.562 (5) -> 0.812 (10) -> 0.812 (15) -> 0.859 (20), greedy 1.0 throughout; the bench's target,
    >= 0.8 at step 20, is met by 3 of 4 seeds (agentrl/train/README.md, "Learning checks").

    This check asserts the mean of steps 10-20 (0.828 measured) >= 0.7, not the endpoint: the
    endpoint of the same seed moved by 0.1 between two runs on this machine (0.859 in the bench,
    0.734 in a clean-clone CI run; the eval cadence and the package versions are ruled out, the
    cause is not isolated). ~8 min on 2 cores."""
    import numpy as np

    curve = eval_curve("calculator.yaml", tmp_path, "steps=20", "eval.every=5")
    assert len(curve) == 5  # step 0 (after SFT), 5, 10, 15, 20
    assert curve[0] <= 0.5, "the warm start should leave room to learn"
    assert float(np.mean(curve[2:])) >= 0.7, curve
