"""What the model backends share: optional imports, secrets from the environment, devices, vector checks,
usage counters."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ...errors import ConfigError, MissingDependency, ValidationError
from ..base import Vectors


def require(module: str, package: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the pip ``package`` and the xmodal ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(package, extra) from exc


def secret(given: str | None, env_names: Sequence[str]) -> str | None:
    """A key given as an option, else the first of ``env_names`` set in the environment (never recorded)."""
    if given:
        return given
    for name in env_names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def positive(value: object, setting: str, encoder: str, *, number: type = int) -> Any:
    """``value`` checked to be a positive ``number`` (int or float), naming the setting otherwise."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if number is float else int) and value > 0
    if not ok:
        raise ConfigError(f"encoder {encoder!r}: option {setting} must be a positive {number.__name__}, got {value!r}")
    return value


def torch_device(device: str) -> tuple[str, Any]:
    """``(device, dtype)``: ``auto`` is CUDA in fp16 when a GPU is present, else the CPU in fp32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"option device={device!r}: no CUDA GPU here; use --encoder-option device=cpu (or auto)")
    return device, torch.float16 if device.startswith("cuda") else torch.float32


def local_dir(path: str | Path, setting: str, encoder: str) -> Path | None:
    """``path`` as a local model folder when it is one, None when it is a name; a path-like value that does
    not exist is an error naming the setting."""
    folder = Path(os.path.expanduser(str(path)))
    if folder.is_dir():
        return folder.resolve()
    if str(path).startswith((".", "/", "~")) or os.sep in str(path) and folder.parent.is_dir():
        raise ConfigError(
            f"encoder {encoder!r}: option {setting}={str(path)!r} is not a folder; "
            "give the folder the model was saved in"
        )
    return None


def checked_rows(vectors: Any, n: int, width: int, source: str, fix: str) -> Vectors:
    """``vectors`` as float32 [n, width] with finite values, or an error saying which row is wrong and how to fix it."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValidationError(
            "vectors", f"{source} returned {arr.shape[0] if arr.ndim else 0} vectors for {n} inputs", fix
        )
    if arr.shape[1] != width:
        raise ConfigError(f"{source} returned {arr.shape[1]}-dimensional vectors, but {width} were expected; {fix}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            "vectors", f"{source} returned a vector with NaN or infinite values (input #{first})", fix
        )
    return arr


class Usage:
    """Thread-safe counts of what a remote backend sent (requests, texts, characters, retries...)."""

    def __init__(self, *names: str) -> None:
        self._counts = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
