"""`agentrl train [CONFIG]`: run the RL loop from a YAML config (none: the embedded CPU default).

Before anything heavy is built, the command checks what a user can get wrong and answers in one
line: the config (fields named), the env id, its options and splits, the model path, the output
folder (writable; holding a run needs ``--resume``) and, on ``--resume``, that the config is the
one the run was started with — a changed seed, estimator or learning rate would silently make a
different run. ``--allow-changed`` accepts the change: the new values apply from the resumed
step on, and the previous config is kept as ``config.until-step-N.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from agentrl.cliutils import (
    describe_differences,
    disk_errors,
    dotted_differences,
    make_env_or_exit,
    not_an_env_option,
    warn,
    writable_dir,
)
from agentrl.train.config import ConfigError, TrainConfig, load_config

#: Fields a resume may change freely: they extend or relocate the run, not what it learns.
FREE_ON_RESUME = ("steps", "output_dir", "tensorboard", "eval.every", "checkpoint.every", "checkpoint.keep")


def resume_differences(previous: TrainConfig, current: TrainConfig) -> dict[str, tuple]:
    """The fields a resumed run would change (``FREE_ON_RESUME`` aside), by dotted name."""
    diff = dotted_differences(previous.model_dump(mode="json"), current.model_dump(mode="json"))
    return {name: values for name, values in diff.items() if name not in FREE_ON_RESUME}


def _check_model(name: str) -> None:
    """A model that is a local path must be a transformers model folder (hub ids are tried later)."""
    if name == "tiny":
        return
    from agentrl.policy.models import ModelLoadError, check_model_dir

    if name.startswith(("/", ".", "~")) or Path(name).expanduser().exists():
        try:
            check_model_dir(name)
        except ModelLoadError as exc:
            raise click.ClickException(f"model.name: {exc}") from None


def _check_output(cfg: TrainConfig, resume: bool, allow_changed: bool) -> None:
    from agentrl.train.checkpoint import Checkpointer

    out = writable_dir(cfg.output_dir)
    steps = Checkpointer(out / "checkpoints").steps()
    if steps and not resume:
        raise click.ClickException(
            f"{out} already holds a run (checkpoints up to step {steps[-1]}): pass --resume to continue it, "
            "or choose another output folder (-o)"
        )
    saved = out / "config.yaml"
    if not (steps and resume and saved.exists()):
        return
    try:
        previous = TrainConfig.model_validate(yaml.safe_load(saved.read_text()))
    except (yaml.YAMLError, ValueError) as exc:
        raise click.ClickException(f"{saved}: cannot read the run's config to compare: {str(exc).splitlines()[0]}") from None
    diff = resume_differences(previous, cfg)
    if not diff:
        return
    if not allow_changed:
        raise click.ClickException(
            f"--resume with a config that differs from the run's ({describe_differences(diff)}); "
            "resume with the same config, or pass --allow-changed to apply the changes from the resumed step on"
        )
    kept = out / f"config.until-step-{steps[-1]}.yaml"
    kept.write_text(saved.read_text())
    warn(f"resuming with changed settings ({describe_differences(diff)}); the previous config is kept as {kept}")


@click.command("train")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one field, e.g. --set optim.lr=3e-4 --set seed=1 (repeatable).")
@click.option("--output", "--output-dir", "-o", "output_dir", callback=not_an_env_option,
              help="Where metrics, checkpoints and the plot go (overrides output_dir).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in the output folder.")
@click.option("--allow-changed", is_flag=True,
              help="With --resume: accept a config that differs from the run's (the changes apply from there on).")
@click.option("--steps", type=click.IntRange(min=0), help="Number of RL steps (overrides steps).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(config: str | None, overrides: tuple[str, ...], output_dir: str | None, resume: bool, allow_changed: bool,
          steps: int | None, no_progress: bool) -> None:
    """Train a policy with RL. Without CONFIG: SFT warm start, then GiGPO on the toy maze (CPU, minutes).

    Writes OUTPUT_DIR/metrics.jsonl, TensorBoard logs, checkpoints/ and learning_curve.png.
    """
    extra = list(overrides)
    if output_dir is not None:
        extra.append(f"output_dir={output_dir}")
    if steps is not None:
        extra.append(f"steps={steps}")
    try:
        cfg = load_config(config, extra)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for split in dict.fromkeys(("train", cfg.eval.split)):
        make_env_or_exit(cfg.env.id, cfg.env.options, split=split).close()
    _check_model(cfg.model.name)
    _check_output(cfg, resume, allow_changed)

    from agentrl.train.checkpoint import CheckpointMismatchError
    from agentrl.train.trainer import Trainer  # heavy imports only once the config is valid

    try:
        trainer = Trainer(cfg, progress=not no_progress, log=click.echo)
    except (ValueError, ImportError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    try:
        with disk_errors(f"the run in {cfg.output_dir}"):
            summary = trainer.run(resume=resume)
    except CheckpointMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"done: {summary['steps']} steps; eval success {summary['start_success']:.3f} → "
        f"{summary['final_success']:.3f}; curve {summary['plot']}; metrics {summary['metrics']}"
    )
