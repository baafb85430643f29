"""Vector indexes behind one interface, created and loaded by name.

``exact`` is the NumPy reference; ``hnsw`` is FAISS HNSW with a per-query planner for filtered
search; ``auto`` (the default) is exact while small and HNSW above a size threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StorageError
from .base import Labels, Scores, VectorIndex, Vectors
from .exact import ExactIndex, read_manifest


def _hnsw(dim: int, **options: Any) -> VectorIndex:
    from .hnsw import HNSWIndex

    index: VectorIndex = HNSWIndex(dim, **options)
    return index


def _auto(dim: int, **options: Any) -> VectorIndex:
    from .auto import AutoIndex

    index: VectorIndex = AutoIndex(dim, **options)
    return index


_FACTORIES: dict[str, Callable[..., VectorIndex]] = {"exact": ExactIndex, "hnsw": _hnsw, "auto": _auto}


def index_kinds() -> list[str]:
    return sorted(_FACTORIES)


def create_index(kind: str, dim: int, **options: Any) -> VectorIndex:
    """A new empty index of the named kind."""
    try:
        factory = _FACTORIES[kind]
    except KeyError:
        raise ConfigError(f"unknown index kind {kind!r}; available: {', '.join(index_kinds())}") from None
    return factory(dim, **options)


def load_index(directory: Path) -> VectorIndex:
    """Load an index saved by ``save``, whatever its kind."""
    kind = str(read_manifest_kind(directory))
    if kind == "exact":
        return ExactIndex.load(directory)
    if kind == "hnsw":
        from .hnsw import HNSWIndex

        loaded: VectorIndex = HNSWIndex.load(directory)
        return loaded
    if kind == "auto":
        from .auto import AutoIndex

        loaded_auto: VectorIndex = AutoIndex.load(directory)
        return loaded_auto
    raise StorageError(f"{directory}: unknown index kind {kind!r}; delete the folder to rebuild it")


def read_manifest_kind(directory: Path) -> object:
    import json

    try:
        return json.loads((directory / "manifest.json").read_text()).get("kind")
    except (OSError, ValueError) as exc:
        raise StorageError(f"{directory}: unreadable index manifest ({exc}); delete the folder to rebuild it") from exc


__all__ = [
    "ExactIndex",
    "Labels",
    "Scores",
    "VectorIndex",
    "Vectors",
    "create_index",
    "index_kinds",
    "load_index",
    "read_manifest",
]
