"""Models loaded once per process: one per kind and file, whatever number of indexes or guards open them.

A model file read at every ``Engine.open`` (the guards' classifiers, the NSFW network, the watermark pair, the
speech model) would cost each open its load; they are immutable once loaded, so the first load is kept and
handed to every later caller. A load that fails keeps nothing (the next caller tries again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()  # held through a load: two callers of the same model never load it twice


def shared(kind: str, path: Path | str | None, load: Callable[[], T]) -> T:
    """The ``kind`` model of ``path`` (None: the default one): ``load()``'s result, loaded the first time only."""
    key = (kind, "" if path is None else str(path))
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load()
        return cast(T, _MODELS[key])
