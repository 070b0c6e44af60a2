"""`agentrl env serve`: any registered env as an HTTP + WebSocket service."""

from __future__ import annotations

import os

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
        click.echo(f"serving {env_id} on unix://{unix}", err=True)
        where, listen = unix, {"path": unix}
    else:
        warning = check_bind(host, token)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        click.echo(
            f"serving {env_id} on ws://{host}:{port}/ws (health: http://{host}:{port}/health)", err=True
        )
        where, listen = f"{host}:{port}", {"host": host, "port": port}
    try:
        web.run_app(server.app(), **listen, print=None, access_log=None)
    except OSError as exc:
        raise click.ClickException(f"cannot bind {where}: {exc.strerror or exc}") from None
