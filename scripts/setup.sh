#!/usr/bin/env bash
# Set up agentrl on a fresh machine: a virtualenv in .venv with agentrl (editable) and the
# extras the tests and bundled tasks use. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Pin torch to the CPU build: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
# On a GPU machine set TORCH_SPEC (e.g. TORCH_SPEC=torch) to take the CUDA build instead.
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev,tasks,gui,lora,interop,ray]"
