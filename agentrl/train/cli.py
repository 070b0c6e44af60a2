"""`agentrl train [CONFIG]`: run the RL loop from a YAML config (none: the embedded CPU default)."""

from __future__ import annotations

import click

from agentrl.train.config import ConfigError, load_config


@click.command("train")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one field, e.g. --set optim.lr=3e-4 --set seed=1 (repeatable).")
@click.option("--output-dir", "-o", help="Where metrics, checkpoints and the plot go (overrides output_dir).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in the output directory.")
@click.option("--steps", type=click.IntRange(min=0), help="Number of RL steps (overrides steps).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(config: str | None, overrides: tuple[str, ...], output_dir: str | None, resume: bool,
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
    from agentrl.train.trainer import Trainer  # heavy imports only once the config is valid

    try:
        trainer = Trainer(cfg, progress=not no_progress, log=click.echo)
    except (ValueError, ImportError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = trainer.run(resume=resume)
    click.echo(
        f"done: {summary['steps']} steps; eval success {summary['start_success']:.3f} → "
        f"{summary['final_success']:.3f}; curve {summary['plot']}; metrics {summary['metrics']}"
    )
