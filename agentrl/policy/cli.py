"""`agentrl serve`: an OpenAI-compatible server for a local transformers model or the tiny model."""

from __future__ import annotations

import click


@click.command()
@click.option("--model", "model_path", default=None, help="Local transformers model directory (default: the tiny model).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--max-batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--name", "model_name", default=None, help="Model name reported by /v1/models.")
def serve(model_path: str | None, host: str, port: int, max_batch_size: int, model_name: str | None) -> None:
    """Serve /v1/completions (token ids + logprobs) and /v1/chat/completions."""
    from aiohttp import web

    from agentrl.policy.hf import HFPolicy
    from agentrl.policy.serve import build_app

    if model_path is None:
        from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
        model = build_tiny_model(tokenizer)
        model_name = model_name or "agentrl-tiny"
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True).eval()
        except OSError as exc:
            raise click.BadParameter(f"cannot load a model from {model_path!r}: {exc}", param_hint="--model") from None
        model_name = model_name or model_path
    policy = HFPolicy(model, tokenizer, max_batch_size=max_batch_size)
    click.echo(f"serving {model_name} on http://{host}:{port}/v1")
    web.run_app(build_app(policy, tokenizer, model_name), host=host, port=port, print=None)
