"""Checkpoints that survive SIGKILL: model (safetensors), optimizer, RNG and loop state.

Layout: ``<dir>/step_00000012/`` holding ``model.safetensors``, ``optimizer.pt``, ``rng.pt`` and
``state.json``. A checkpoint is written into ``<dir>/.tmp-step_00000012/``, every file is
flushed to disk, and the folder is renamed into place (an atomic rename on POSIX): a folder named
``step_*`` is always complete, so a kill at any instant leaves either the previous checkpoint
or the new one, never half of one. Older checkpoints beyond ``keep`` are removed afterwards.

``rollout_buffer.json`` (mode async) holds the rollout stream's state: finished groups not yet
trained on and the specs still rolling out (:meth:`agentrl.rollout.engine.GroupStream.state`),
so a resume loses and duplicates no group.

``state.json`` holds the loop state: the step that was completed, the policy version, the
trainer's own generator states and anything else the loop needs to continue exactly where it
stopped. ``rng.pt`` holds the global Python, NumPy and torch (CPU and CUDA) generator states.

Loading restores the optimizer's *state* (Adam moments, step counts) and the schedule's position,
but the hyperparameters (learning rate, betas, weight decay) are those of the optimizer being
loaded into, i.e. of the current config: ``agentrl train --resume`` refuses a changed config
unless ``--allow-changed`` is given, and then a new learning rate really applies. A checkpoint
that does not fit the model (another shape) raises :class:`CheckpointMismatchError`.

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


class CheckpointMismatchError(ValueError):
    """The checkpoint was written for another model (other tensor names or shapes)."""


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
        rollout_buffer: dict[str, Any] | None = None,
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
        if rollout_buffer is not None:
            (tmp / "rollout_buffer.json").write_text(json.dumps(rollout_buffer))
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
        try:
            self._load_weights(path, model)
        except RuntimeError as exc:  # torch's message: a page of "size mismatch for ..." lines
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = next((line for line in lines if "size mismatch" in line or "Missing key" in line), lines[0])
            raise CheckpointMismatchError(
                f"{path} does not fit this model ({detail.rstrip('.')}): it was written for another model shape"
            ) from None
        blob = torch.load(path / "optimizer.pt", weights_only=False)
        if optimizer is not None:
            hyper = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            optimizer.load_state_dict(blob["optimizer"])
            for group, current in zip(optimizer.param_groups, hyper, strict=True):
                group.update(current)  # the current config's lr, betas, weight decay
        if scheduler is not None and blob["scheduler"] is not None:
            scheduler.load_state_dict(blob["scheduler"])
            if optimizer is not None and hasattr(scheduler, "lr_lambdas"):  # LambdaLR: rebase on the current lr
                scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
                for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas,
                                               strict=True):
                    group["lr"] = base * factor(scheduler.last_epoch)
                scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        return json.loads((path / "state.json").read_text())

    @staticmethod
    def load_rollout_buffer(path: str | Path) -> dict[str, Any] | None:
        """The rollout stream state saved with the checkpoint at ``path`` (None: none was)."""
        file = Path(path) / "rollout_buffer.json"
        return json.loads(file.read_text()) if file.exists() else None

    @staticmethod
    def _load_weights(path: Path, model: torch.nn.Module) -> None:
        if not _has_frozen_params(model):
            load_model(model, str(path / "model.safetensors"))
            return
        tensors = load_file(path / "model.safetensors")
        missing = set(tensors) - {n for n, _ in model.named_parameters()}
        if missing:
            raise RuntimeError(f"Missing key(s) in the model: {sorted(missing)[:5]}")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in tensors.items():
                params[name].copy_(value)
