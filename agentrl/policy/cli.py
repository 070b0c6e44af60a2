"""`agentrl serve`: an OpenAI-compatible server for a local transformers model or the tiny model.

The address is bound before the model loads, so a port in use fails in a second with one line.
A bind on anything but a loopback address warns: the model is then reachable from other machines
(set ``--api-key``).
"""

from __future__ import annotations

import ipaddress
import os
import socket

import click

from agentrl.cliutils import warn


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None


@click.command()
@click.option("--model", "model_path", default=None, help="Local transformers model directory (default: the tiny model).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--max-batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--name", "model_name", default=None, help="Model name reported by /v1/models.")
@click.option("--api-key", envvar="AGENTRL_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on every request (default: $AGENTRL_API_KEY).")
def serve(model_path: str | None, host: str, port: int, max_batch_size: int, model_name: str | None,
          api_key: str | None) -> None:
    """Serve /v1/completions (token ids + logprobs) and /v1/chat/completions."""
    if not is_loopback(host):
        warn(f"--host {host} is reachable from other machines"
             + (" and no --api-key is set: anyone who can reach it can use the model" if not api_key else ""))
    from agentrl.policy.models import ModelLoadError, check_model_dir, load_named_model

    try:
        if model_path is not None:
            check_model_dir(model_path)
    except ModelLoadError as exc:
        raise click.ClickException(f"--model: {exc}") from None
    sock = _bind(host, port)

    from aiohttp import web
    from transformers.utils import logging as hf_logging

    from agentrl.policy.hf import HFPolicy
    from agentrl.policy.serve import build_app

    hf_logging.set_verbosity_error()
    if model_path is None:
        from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
        model = build_tiny_model(tokenizer)
        model_name = model_name or "agentrl-tiny"
    else:
        try:
            model, tokenizer = load_named_model(model_path)
        except ModelLoadError as exc:
            raise click.ClickException(f"--model: {exc}") from None
        model = model.eval()
        model_name = model_name or model_path
    policy = HFPolicy(model, tokenizer, max_batch_size=max_batch_size)
    click.echo(f"serving {model_name} on http://{host}:{port}/v1")
    web.run_app(build_app(policy, tokenizer, model_name, api_key=api_key), sock=sock, print=None)
