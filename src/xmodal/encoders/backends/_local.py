"""Finding a model's weights on this machine: a local folder, or the Hugging Face cache (never downloaded here)."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from ._common import local_dir


def model_folder(model: object, encoder: str, *, offline_hint: str = "") -> Path:
    """The folder holding ``model``: the folder itself, or the cached snapshot of a hub name. Without either,
    a :class:`ConfigError` naming both ways to provide the weights (nothing is downloaded at run time)."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"encoder {encoder!r}: no model; pass --encoder-option model=/path/to/folder (or a hub name)")
    folder = local_dir(model, "model", encoder)
    if folder is not None:
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not in the cache (or no huggingface_hub): say how to get it
        raise ConfigError(
            f"encoder {encoder!r}: no weights for model {model!r} on this machine: give a local folder "
            f"(--encoder-option model=/path/to/saved/model){offline_hint}, or download it once where a network exists "
            f"(huggingface-cli download {model}), after which it is read from the Hugging Face cache"
        ) from None
