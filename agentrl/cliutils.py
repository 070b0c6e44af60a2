"""Pieces every `agentrl` command shares: env options, output folders, one-line errors.

One scheme for short options across commands: ``-o`` is always the output (a run folder or a
file), ``-e KEY=VALUE`` is always an env option (``--option`` is kept as a long alias). A user
mistake ends in one ``Error: ...`` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

import agentrl
from agentrl.env import EnvOptionError, UnknownEnvError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_LOOKS_LIKE_OPTION = re.compile(r"^[A-Za-z_]\w*=")


def quiet_libraries() -> None:
    """No transformers log lines or weight-loading bars between our own lines (a user's explicit
    ``TRANSFORMERS_VERBOSITY`` / ``HF_HUB_DISABLE_PROGRESS_BARS`` wins)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def dotted_differences(old: dict, new: dict, prefix: str = "") -> dict[str, tuple]:
    """``{"agent.temperature": (old, new), ...}``: the leaves of two nested settings that differ."""
    diff = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diff |= dotted_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diff[f"{prefix}{key}"] = (a, b)
    return diff


def describe_differences(diff: dict[str, tuple]) -> str:
    return "; ".join(f"{name}: {a!r} -> {b!r}" for name, (a, b) in diff.items())


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def parse_env_options(pairs: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse (numbers, true, null), else text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env-option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def make_env_or_exit(env_id: str, options: dict, split: str | None = None) -> agentrl.TextEnv:
    """The env, or a one-line error naming the bad id, option or empty split."""
    if "remote" in options:
        raise click.ClickException(
            "-e remote=...: this command walks the env's task list, which a remote env keeps on its server; "
            "run it where the env is served, or play remote episodes from Python with agentrl.make(ID, remote=URL)"
        )
    try:
        env = agentrl.make(env_id, **{**options, **({"split": split} if split else {})})
    except (UnknownEnvError, EnvOptionError) as exc:
        raise click.ClickException(str(exc)) from None
    if split is not None and not env.tasks.split(split).ids():
        sizes = ", ".join(f"{name} {n}" for name, n in env.tasks.split_sizes().items() if n)
        env.close()
        raise click.ClickException(f"{env_id} has no tasks in split {split!r} (it has: {sizes})")
    return env


def env_option(fn):
    """``-e/--env-option KEY=VALUE`` (repeatable; ``--option`` still works)."""
    return click.option(
        "--env-option", "--option", "-e", "options", multiple=True, metavar="KEY=VALUE",
        help="Env option KEY=VALUE (repeatable).",
    )(fn)


def not_an_env_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse ``-o size=3``: ``-o`` used to be an env option in some commands; now it is the output."""
    if value is not None and _LOOKS_LIKE_OPTION.match(value):  # KEY=… even when … is a path
        raise click.BadParameter(
            f"{value!r} looks like an env option; -o is the output, env options are -e KEY=VALUE", ctx, param
        )
    return value


def writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and check a file can be written in it; a one-line error otherwise."""
    directory = Path(path)
    probe = directory / ".agentrl-write-test"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise click.ClickException(f"cannot write to the output folder {str(directory)!r}: {exc.strerror or exc}") from None
    return directory


@contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """Turn a full or read-only disk while writing ``what`` into one clear line (the rest propagates)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise click.ClickException(
            f"{exc.strerror} while writing {exc.filename or what}; everything completely written is kept: "
            "free some space and run the same command again to resume"
        ) from None
