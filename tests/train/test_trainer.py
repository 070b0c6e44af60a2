"""The RL loop end to end with the tiny model: SIGKILL + --resume, bad configs, one-step-off."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agentrl.cli import main

# A very small run: 1-layer model, 3x3 mazes, 2 groups of 2 episodes per step, no warm start.
SMALL = {
    "seed": 3,
    "steps": 4,
    "model": {"tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}},
    "env": {"options": {"size": 3, "num_tasks": 8, "max_turns": 3}},
    "rollout": {"groups_per_step": 2, "group_size": 2, "max_tokens": 8},
    "sft": {"episodes": 0},
    "eval": {"every": 0, "episodes": 2},
    "checkpoint": {"every": 1, "keep": 2},
}


def write_config(tmp_path, **changes):
    config = {**SMALL, "output_dir": str(tmp_path / "run"), **changes}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def steps_logged(run):
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_repeats_no_step(tmp_path):
    config = write_config(tmp_path, steps=6, loss={"kl_coef": 0.01})  # the KL reference must survive too
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentrl", "train", str(config), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "checkpoints" / "step_00000002").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = steps_logged(run)
    assert 2 <= max(killed_at) < 6  # killed mid-run

    done = subprocess.run(cmd + ["--resume"], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    resumed_from = int(done.stdout.split("resumed from step ")[1].split()[0])
    assert resumed_from >= 2
    assert steps_logged(run) == [0, 1, 2, 3, 4, 5, 6]  # every step exactly once
    state = json.loads((run / "checkpoints" / "step_00000006" / "state.json").read_text())
    assert state["step"] == 6 and state["policy_version"] == 6  # one weight version per step
    assert (run / "learning_curve.png").stat().st_size > 0
    assert list((run / "tensorboard").iterdir())
    assert (run / "final" / "model.safetensors").exists()
    assert (run / "reference.safetensors").exists()
    kl = [json.loads(line).get("train/kl") for line in (run / "metrics.jsonl").read_text().splitlines()][1:]
    assert all(0.0 <= v < 1.0 for v in kl)  # measured against the start policy, not a random one


def test_bad_config_names_the_field(tmp_path):
    config = write_config(tmp_path, loss={"clip_low": 1.5}, rollout={"group_sise": 4})
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code != 0
    assert "loss.clip_low" in result.output and "rollout.group_sise" in result.output


def test_bad_env_option_fails_before_training(tmp_path):
    config = write_config(tmp_path, env={"options": {"size": 99}})
    result = CliRunner().invoke(main, ["train", str(config)])
    assert result.exit_code != 0 and "size" in result.output


def test_existing_run_needs_resume(tmp_path):
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    config = load_config(write_config(tmp_path, steps=1))
    Trainer(config, progress=False, log=lambda *_: None).run()
    with pytest.raises(RuntimeError, match="--resume"):
        Trainer(config, progress=False, log=lambda *_: None).run()


@pytest.mark.slow
def test_one_step_off_trains_on_one_version_old_rollouts(tmp_path):
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    config = load_config(write_config(tmp_path, steps=3, mode="one_step_off"))
    summary = Trainer(config, progress=False, log=lambda *_: None).run()
    records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    rl = [r for r in records if r["step"] > 0]
    assert [r["step"] for r in rl] == [1, 2, 3]
    assert rl[0]["rollout/staleness"] == 0.0
    # Step k+1 is rolled out while step k trains: its tokens are at most one version old.
    assert all(r["rollout/staleness"] in (0.0, 1.0) for r in rl)
    assert all(r["rollout/failed_attempts"] == 0.0 for r in rl)  # every record says how many attempts failed
    assert rl[-1]["policy_version"] == 3


class ScriptedRollouts:
    """Stands in for the rollout engine and the async stream: hands out groups of the scripted
    member rewards, recording what was asked for."""

    def __init__(self, *rewards):
        from agentrl.rollout import Group, GroupSpec
        from agentrl.types import Trajectory

        self.groups = [Group(spec=GroupSpec(seed=i), members=[Trajectory(task_id="t", final_reward=r) for r in rs])
                       for i, rs in enumerate(rewards)]
        self.asked: list = []

    async def run(self, specs):
        self.asked.append([s.seed for s in specs])
        return [self.groups.pop(0) for _ in specs]

    async def take(self, picks_left):
        self.asked.append(picks_left)
        return self.groups.pop(0) if self.groups else None


def scripted_trainer(dynamic_sampling=True):
    from types import SimpleNamespace

    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    t = Trainer.__new__(Trainer)  # only the batch filling: no model is built
    t.config = load_config(overrides=["seed=7", "rollout.groups_per_step=2", f"rollout.dynamic_sampling={dynamic_sampling}",
                                      "rollout.dynamic_sampling_max_draws=2"])
    t.policy = SimpleNamespace(reseed=lambda seed: None)
    t._batch = list  # the kept groups themselves
    return t


# Flat (no reward variance), signal, flat, flat: budget (2 - 1) x 2 = 2 skips, then flat is kept.
SCRIPT = ((1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 0.0))


def test_dynamic_sampling_draws_until_the_batch_is_full_within_its_budget():
    import asyncio

    from agentrl.rollout import group_specs
    from agentrl.rollout.episode import derive_seed
    from agentrl.train.trainer import SPEC_SEED_STRIDE

    t = scripted_trainer()
    t.engine = engine = ScriptedRollouts(*SCRIPT)
    kept, _, skipped = asyncio.run(t.rollout(5))
    assert [g.spec.seed for g in kept] == [1, 3] and skipped == 2
    # Draw 0 is the step's own specs (as without dynamic sampling), later draws are seeded by (seed, step, draw).
    seeds = [7 * SPEC_SEED_STRIDE + 5, derive_seed(7, 5, 1), derive_seed(7, 5, 2)]
    assert engine.asked == [[s.seed for s in group_specs(n, seed=seed)] for n, seed in zip((2, 1, 1), seeds)]

    stream = ScriptedRollouts(*SCRIPT)  # one group per take; the picks left count down as groups are kept
    kept, _, skipped = asyncio.run(t.take(stream))
    assert [g.spec.seed for g in kept] == [1, 3] and skipped == 2 and stream.asked == [2, 2, 1, 1]

    with pytest.raises(RuntimeError, match="the rollout stream ran out of group specs"):
        asyncio.run(t.take(ScriptedRollouts(*SCRIPT[:3])))

    off = scripted_trainer(dynamic_sampling=False)
    off.engine = ScriptedRollouts(*SCRIPT)
    kept, _, skipped = asyncio.run(off.rollout(5))
    assert [g.spec.seed for g in kept] == [0, 1] and skipped == 0
