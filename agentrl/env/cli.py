"""`agentrl env serve`: any registered env as an HTTP + WebSocket service; `agentrl env image | up |
down`: the same server in containers without network (agentrl/env/container.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from aiohttp import web

from agentrl.cliutils import env_option, parse_env_options


@click.group("env")
def env() -> None:
    """Serve environments as services (see agentrl/env/SERVICES.md)."""


@env.command("serve")
@click.argument("env_id")
@env_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback unless told).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--unix",
    "unix",
    default=None,
    metavar="PATH",
    help="Listen on this Unix socket instead of HOST:PORT (clients: remote='unix://PATH').",
)
@click.option(
    "--max-sessions",
    default=1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Sessions one process holds; the next one is told the server is busy.",
)
@click.option(
    "--idle-timeout",
    "idle_timeout_s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Close a session untouched this many seconds.",
)
@click.option(
    "--token", default=None, help="Require this bearer token (default: $AGENTRL_ENV_TOKEN, else none)."
)
@click.option("--max-message-bytes", default=8 << 20, show_default=True, type=click.IntRange(min=1024))
@click.option(
    "--rate-limit",
    default=1000.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Frames a second per session.",
)
def serve(
    env_id: str,
    options: tuple[str, ...],
    host: str,
    port: int,
    unix: str | None,
    max_sessions: int,
    idle_timeout_s: float,
    token: str | None,
    max_message_bytes: int,
    rate_limit: float,
) -> None:
    """Serve ENV_ID: each WebSocket client of ws://HOST:PORT/ws (or of the Unix socket) gets its own session."""
    from agentrl.env.base import EnvOptionError
    from agentrl.env.registry import UnknownEnvError
    from agentrl.env.server import EnvServer, check_bind, check_unix_path

    if unix is not None and (problem := check_unix_path(unix)):
        raise click.ClickException(problem)
    token = token or os.environ.get("AGENTRL_ENV_TOKEN") or None
    try:
        server = EnvServer(
            env_id,
            parse_env_options(options),
            max_sessions=max_sessions,
            idle_timeout_s=idle_timeout_s,
            token=token,
            max_message_bytes=max_message_bytes,
            rate_limit=rate_limit,
        )
    except (UnknownEnvError, EnvOptionError) as exc:
        raise click.ClickException(str(exc)) from None
    if unix is not None:
        banner = f"serving {env_id} on unix://{unix}"
        where, listen = unix, {"path": unix}
    else:
        warning = check_bind(host, token)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        banner = f"serving {env_id} on ws://{host}:{port}/ws (health: http://{host}:{port}/health)"
        where, listen = f"{host}:{port}", {"host": host, "port": port}
    try:  # aiohttp calls ``print`` once the socket is bound: a busy port never says "serving"
        web.run_app(server.app(), **listen, print=lambda _: click.echo(banner, err=True), access_log=None)
    except OSError as exc:
        raise click.ClickException(f"cannot bind {where}: {exc.strerror or exc}") from None


@env.command("image")
@click.argument("env_id")
@click.option(
    "--package", "-p", "packages", multiple=True, help="Extra pip requirement for the image (repeatable)."
)
@click.option("--base", default="auto", show_default=True, help="Base image, as for `agentrl sandbox build`.")
@click.option("--tag", default=None, help="Image tag (default: agentrl-env:<env id>).")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date image exists.")
def image(env_id: str, packages: tuple[str, ...], base: str, tag: str | None, force: bool) -> None:
    """Build (or reuse) the container image that serves ENV_ID (agentrl without torch; no registry needed)."""
    from agentrl.env.container import build_env_image

    with _one_line_errors():
        click.echo(build_env_image(env_id, packages, base=base, tag=tag, force=force, log=click.echo))


@env.command("up")
@click.argument("env_id")
@click.option(
    "-n", "count", default=1, show_default=True, type=click.IntRange(min=1), help="Containers to start."
)
@click.option(
    "--dir",
    "folder",
    default=None,
    type=click.Path(file_okay=False),
    help="Host folder for the sockets (DIR/<i>/env.sock; default: a new temporary folder).",
)
@env_option
@click.option(
    "--image", default=None, help="Image to start (default: the one `agentrl env image ENV_ID` builds)."
)
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, help="Seconds to wait for /health.")
@click.option(
    "--detach", "-d", is_flag=True, help="Return once they answer; stop them with `agentrl env down`."
)
def up(
    env_id: str,
    count: int,
    folder: str | None,
    options: tuple[str, ...],
    image: str | None,
    timeout_s: float,
    detach: bool,
) -> None:
    """Start COUNT containers serving ENV_ID without network, each on a Unix socket; print their addresses."""
    import signal
    import time

    from agentrl.env.container import stale_image_warning, start_env_containers

    parse_env_options(options)  # a malformed KEY=VALUE is refused before anything starts
    start = time.perf_counter()
    with _one_line_errors():
        if warning := stale_image_warning(env_id, image):
            click.echo(f"warning: {warning}", err=True)
        if not detach:  # a `kill` stops them too, from the moment they exist
            signal.signal(signal.SIGTERM, signal.default_int_handler)
        started = start_env_containers(env_id, count, folder, options, image=image, timeout_s=timeout_s)
    try:  # from here a Ctrl-C or kill at any point stops them (the URLs may already be read)
        for url in started.urls:
            click.echo(url)
        click.echo(
            f"{count} container(s) of {env_id} answer after {time.perf_counter() - start:.1f} s; use them with "
            f'agentrl.make("{env_id}", remote="{started.remote}")',
            err=True,
        )
        if detach:
            click.echo(f"stop them with: agentrl env down {env_id}", err=True)
            return
        click.echo("Ctrl-C stops them", err=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if not detach:
            started.stop()
            click.echo(f"stopped {count} container(s)", err=True)


@env.command("down")
@click.argument("env_id", required=False)
@click.option("--dir", "folder", default=None, help="Only the containers whose sockets are in this folder.")
def down(env_id: str | None, folder: str | None) -> None:
    """Stop the env server containers `agentrl env up` started (of ENV_ID, or all)."""
    from agentrl.env.container import stop_env_containers

    with _one_line_errors():
        removed = stop_env_containers(env_id, folder)
    click.echo(f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else ""))


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Docker missing or down, an image not built, a bad id: one line, no traceback."""
    from agentrl.env.base import EnvOptionError
    from agentrl.env.container import EnvContainerError
    from agentrl.env.registry import UnknownEnvError
    from agentrl.sandbox.errors import SandboxError

    try:
        yield
    except (EnvContainerError, SandboxError, UnknownEnvError, EnvOptionError) as exc:
        raise click.ClickException(str(exc)) from None
