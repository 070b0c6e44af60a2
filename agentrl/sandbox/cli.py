"""``agentrl sandbox build | ls | prune | check``."""

from __future__ import annotations

import asyncio

import click

from agentrl.sandbox.errors import SandboxError
from agentrl.sandbox.image import BUILD_LABEL, VARIANTS


@click.group("sandbox")
def sandbox() -> None:
    """Build the sandbox image and manage sandbox containers."""


@sandbox.command()
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="python", show_default=True,
              help="python: agentrl-sandbox:latest; browser: agentrl-sandbox-browser:latest (+ Debian "
                   "chromium, chromium-driver), for the GUI browser tier's docker backend.")  # fmt: skip
@click.option("--tag", default=None, help="Image tag to build (default: the variant's).")
@click.option("--base", default="auto", show_default=True,
              help="Base image (BASE_IMAGE build arg). 'auto': python:3.11-slim if local or pullable, "
                   "else a Debian base made with debootstrap.")  # fmt: skip
@click.option(
    "--package", "-p", "packages", multiple=True, help="Extra pip requirement for the image (repeatable)."
)
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date image exists.")
def build(variant: str, tag: str | None, base: str, packages: tuple[str, ...], force: bool) -> None:
    """Build (or reuse) the sandbox image without needing a registry."""
    from agentrl.sandbox.image import build_image

    try:
        build_image(tag=tag, base=base, packages=packages, force=force, log=click.echo, variant=variant)
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None


@sandbox.command()
def venv() -> None:
    """Build (or reuse) the local backend's own interpreter (a venv without project or task packages)."""
    from agentrl.sandbox.interpreter import sandbox_venv

    try:
        click.echo(sandbox_venv(log=click.echo))
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None


@sandbox.command("ls")
def ls() -> None:
    """Sandbox images and containers known to the Docker engine."""
    from agentrl.sandbox.docker import LABEL, is_orphan
    from agentrl.sandbox.image import docker_client

    try:
        client = docker_client()
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    for image in client.images.list(filters={"label": BUILD_LABEL}):
        click.echo(
            f"image     {','.join(image.tags) or image.short_id}  build={image.labels.get(BUILD_LABEL)}"
        )
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        owner = (
            "orphan"
            if is_orphan(c.labels)
            else f"pid {c.labels.get('agentrl.pid')}@{c.labels.get('agentrl.host')}"
        )
        click.echo(f"container {c.name}  {c.status}  {owner}")


@sandbox.command()
@click.option("--all", "everything", is_flag=True, help="Remove every sandbox container, not only orphans.")
def prune(everything: bool) -> None:
    """Remove orphaned sandbox containers (whose owning process is gone)."""
    from agentrl.sandbox.docker import cleanup_orphans

    try:
        removed = cleanup_orphans(everything=everything)
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else ""))


def _backend(ctx, param, name: str) -> str:
    from agentrl.sandbox.registry import check_backend

    try:
        return check_backend(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@sandbox.command()
@click.option("--backend", default="local", show_default=True, callback=_backend,
              help="A sandbox backend name (built in: local, docker; more via the agentrl.sandboxes entry points).")  # fmt: skip
def check(backend: str) -> None:
    """Start one sandbox, run a cell, print what isolation it got."""
    from agentrl.sandbox import create

    async def go() -> None:
        async with await create(backend) as sb:
            result = await sb.run_code("import sys; print(sys.version.split()[0]); 6 * 7")
            click.echo(
                f"{backend}: {result.stdout.strip()} -> {result.result} in {result.duration * 1e3:.1f} ms"
            )
            for key, value in sb.info().items():
                click.echo(f"  {key}: {value}")

    try:
        asyncio.run(go())
    except SandboxError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
