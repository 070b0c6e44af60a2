"""Checkpoints that survive SIGKILL: model (safetensors), optimizer, RNG and loop state.

Layout: ``<dir>/step_00000012/`` holding ``model.safetensors``, ``optimizer.pt``, ``rng.pt`` and
``state.json``. A checkpoint is written into ``<dir>/.tmp-step_00000012/``, every file is
flushed to disk, and the folder is renamed into place (an atomic rename on POSIX): a folder named
``step_*`` is always complete, so a kill at any instant leaves either the previous checkpoint
or the new one, never half of one. Older checkpoints beyond ``keep`` are removed afterwards.

``state.json`` holds the loop state: the step that was completed, the policy version, the
trainer's own generator states and anything else the loop needs to continue exactly where it
stopped. ``rng.pt`` holds the global Python, NumPy and torch (CPU and CUDA) generator states.

With LoRA only the trainable (adapter) tensors are saved: the frozen base is rebuilt from the
model config. Tied tensors (input/output embeddings) are handled by
:func:`safetensors.torch.save_model`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

_STEP_DIR = re.compile(r"^step_(\d{8})$")


def _fsync_tree(path: Path) -> None:
    for file in path.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _has_frozen_params(model: torch.nn.Module) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Save and find checkpoints under ``directory`` (keeping the newest ``keep``)."""

    def __init__(self, directory: str | Path, keep: int = 2):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = Path(directory)
        self.keep = keep

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_STEP_DIR.match(p.name) for p in self.directory.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}"

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loop_state: dict[str, Any],
        scheduler: Any = None,
    ) -> Path:
        """Write checkpoint ``step`` atomically and return its folder."""
        final = self.path(step)
        tmp = self.directory / f".tmp-{final.name}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        if _has_frozen_params(model):
            save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                      tmp / "model.safetensors")
        else:
            save_model(model, str(tmp / "model.safetensors"))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None},
            tmp / "optimizer.pt",
        )
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **loop_state}, indent=1))
        _fsync_tree(tmp)
        if final.exists():  # a re-run of the same step after a resume: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.path(old), ignore_errors=True)
        return final

    def load(
        self, path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None
    ) -> dict[str, Any]:
        """Restore weights, optimizer, scheduler and global RNG from ``path``; return the loop state."""
        path = Path(path)
        if _has_frozen_params(model):
            tensors = load_file(path / "model.safetensors")
            missing = set(tensors) - {n for n, _ in model.named_parameters()}
            if missing:
                raise ValueError(f"{path}: checkpoint tensors not in the model: {sorted(missing)[:5]}")
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in tensors.items():
                    params[name].copy_(value)
        else:
            load_model(model, str(path / "model.safetensors"))
        blob = torch.load(path / "optimizer.pt", weights_only=False)
        if optimizer is not None:
            optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None and blob["scheduler"] is not None:
            scheduler.load_state_dict(blob["scheduler"])
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        return json.loads((path / "state.json").read_text())
