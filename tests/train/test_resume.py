"""`agentrl train --resume`: nothing lost, nothing silently changed; user mistakes are one line."""

import errno
import json
import shutil

import pytest
import torch
import yaml
from click.testing import CliRunner

from agentrl.cli import main
from agentrl.train.checkpoint import Checkpointer, CheckpointMismatchError
from agentrl.train.metrics import MetricsLog

from .test_trainer import SMALL


def train(*args):
    result = CliRunner().invoke(main, ["train", *args, "--no-progress"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A finished 1-step run (checkpoints at steps 0 and 1) and its config file."""
    root = tmp_path_factory.mktemp("base")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "steps": 1, "tensorboard": False}))
    result = train(str(config), "-o", str(root / "run"))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def run(one_step_run, tmp_path):
    shutil.copytree(one_step_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_changed_settings_are_refused_naming_the_fields(run):
    before = (run / "run" / "config.yaml").read_text()
    refused = train(str(run / "config.yaml"), "-o", str(run / "run"), "--resume", "--steps", "2",
                    "--set", "seed=4", "--set", "algo.estimator=grpo", "--set", "algo.config={}",
                    "--set", "optim.lr=0.001")
    assert refused.exit_code == 1
    message = refused.stderr.strip()
    assert message.startswith("Error: --resume with a config that differs from the run's (")
    for field in ("algo.config.penalty_mode: 'discounted' -> None", "algo.estimator: 'gigpo' -> 'grpo'",
                  "optim.lr: 0.0003 -> 0.001", "seed: 3 -> 4"):
        assert field in message
    assert "steps:" not in message.replace("_steps", "")  # more steps is a free change
    assert "--allow-changed" in message and len(message.splitlines()) == 1
    assert (run / "run" / "config.yaml").read_text() == before


def test_allow_changed_applies_the_new_learning_rate(run):
    result = train(str(run / "config.yaml"), "-o", str(run / "run"), "--resume", "--steps", "2",
                   "--set", "optim.lr=0.001", "--allow-changed")
    assert result.exit_code == 0, result.output
    assert "warning: resuming with changed settings (optim.lr: 0.0003 -> 0.001)" in result.stderr
    records = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert records[1]["train/lr"] == pytest.approx(3e-4) and records[2]["train/lr"] == pytest.approx(1e-3)
    assert yaml.safe_load((run / "run" / "config.until-step-1.yaml").read_text())["optim"]["lr"] == 3e-4
    assert yaml.safe_load((run / "run" / "config.yaml").read_text())["optim"]["lr"] == 1e-3


def test_a_partial_metrics_line_is_dropped_and_the_resume_goes_on(run, caplog):
    metrics = run / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 2, "rollout/rew')  # killed mid-write
    result = train(str(run / "config.yaml"), "-o", str(run / "run"), "--resume", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "dropped a partial last line" in caplog.text
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [0, 1, 2]


def test_a_bad_metrics_line_in_the_middle_names_its_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n{"ste\n{"step": 1}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON record"):
        MetricsLog(tmp_path, tensorboard=False).records()


def test_a_folder_holding_a_run_needs_resume(run):
    result = train(str(run / "config.yaml"), "-o", str(run / "run"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {run / 'run'} already holds a run (checkpoints up to step 1): pass --resume to continue it, "
        "or choose another output folder (-o)"
    )


def test_a_resume_into_another_model_shape_is_one_line(run):
    result = train(str(run / "config.yaml"), "-o", str(run / "run"), "--resume", "--steps", "2",
                   "--set", "model.tiny.hidden_size=48", "--allow-changed")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "does not fit this model (size mismatch for" in last
    assert last.endswith("it was written for another model shape")


def test_a_full_disk_during_training_is_one_line(run, monkeypatch):
    def full(self, step, values):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(MetricsLog, "write", full)
    result = train(str(run / "config.yaml"), "-o", str(run / "fresh"))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: No space left on device while writing {run / 'fresh' / 'metrics.jsonl'}; everything completely "
        "written is kept: free some space and run the same command again to resume"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "env.id=agentrl/Mazee-v0"], "Error: unknown environment 'agentrl/Mazee-v0'. Did you mean: agentrl/Maze-v0"),
        (["--set", "model.name=/no/such/model"], "Error: model.name: model folder '/no/such/model' does not exist"),
        (["--set", "seed=[1"], "Error: override 'seed=[1': the value is not valid YAML"),
        (["--set", "eval.split=dev"], "Error: agentrl/Maze-v0 has no tasks in split 'dev'"),
        (["-o", "size=3"], "looks like an env option; -o is the output"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, args, message):
    result = train("-o", str(tmp_path / "out"), *args) if args[0] != "-o" else train(*args)
    assert result.exit_code != 0 and message in result.stderr and "Traceback" not in result.output


def test_an_unwritable_output_folder(tmp_path):
    (tmp_path / "file").write_text("")
    result = train("-o", str(tmp_path / "file" / "run"))
    assert result.exit_code == 1 and "Error: cannot write to the output folder" in result.stderr


def test_checkpoint_keeps_the_state_but_takes_the_current_hyperparameters(tmp_path):
    def build(lr):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 4))
        return model, opt, sched

    model, opt, sched = build(0.1)
    for _ in range(2):
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        sched.step()
    path = Checkpointer(tmp_path).save(2, model, opt, {}, sched)
    other, other_opt, other_sched = build(0.01)
    Checkpointer(tmp_path).load(path, other, other_opt, other_sched)
    assert other_sched.last_epoch == 2
    assert other_opt.param_groups[0]["lr"] == pytest.approx(0.01 * 3 / 4)  # new base lr, same schedule position
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    wide = torch.nn.Linear(5, 2)
    with pytest.raises(CheckpointMismatchError, match="size mismatch for weight"):
        Checkpointer(tmp_path).load(path, wide)
