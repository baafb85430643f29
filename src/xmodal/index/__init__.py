"""Vector indexes behind one interface, created and loaded by name through a registry.

``exact`` is the NumPy reference; ``hnsw`` is FAISS HNSW with a per-query planner for filtered
search; ``auto`` (the default) is exact while small and HNSW above a size threshold. Another kind
comes from an ``xmodal.index_kinds`` entry point or a dotted path ``"package.module:Class"``: a class
built as ``Class(dim, **options)`` with a ``load(directory)`` classmethod, whose manifest records the
name it is loaded by again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from ..errors import StorageError
from ..registry import Registry
from .base import Labels, Scores, VectorIndex, Vectors
from .exact import ExactIndex, read_manifest


class IndexClass(Protocol):
    """What an index kind registers: a class built from ``dim`` and options that loads a saved index."""

    def __call__(self, dim: int, **options: Any) -> VectorIndex: ...

    def load(self, directory: Path) -> VectorIndex: ...


def _is_index_class(obj: object) -> bool:
    members = ("add", "remove", "search", "labels", "save", "load")
    return isinstance(obj, type) and all(hasattr(obj, name) for name in members)


#: Index kinds by name: registered here, ``xmodal.index_kinds`` entry points, or ``"package.module:Class"``
#: (built-ins as lazy references, so importing xmodal never imports FAISS).
INDEX_KINDS: Registry[IndexClass] = Registry("index_kinds", "index kind", _is_index_class)
INDEX_KINDS.register("exact", "xmodal.index.exact:ExactIndex")
INDEX_KINDS.register("hnsw", "xmodal.index.hnsw:HNSWIndex")
INDEX_KINDS.register("auto", "xmodal.index.auto:AutoIndex")


def index_kinds() -> list[str]:
    return INDEX_KINDS.names()


def create_index(kind: str, dim: int, **options: Any) -> VectorIndex:
    """A new empty index of the named kind."""
    return INDEX_KINDS.resolve(kind)(dim, **options)


def load_index(directory: Path) -> VectorIndex:
    """Load an index saved by ``save``, whatever its kind."""
    kind = read_manifest_kind(directory)
    if not isinstance(kind, str) or (kind not in INDEX_KINDS and ":" not in kind):
        raise StorageError(f"{directory}: unknown index kind {kind!r}; delete the folder to rebuild it")
    return INDEX_KINDS.resolve(kind).load(directory)


def read_manifest_kind(directory: Path) -> object:
    try:
        return json.loads((directory / "manifest.json").read_text()).get("kind")
    except (OSError, ValueError) as exc:
        raise StorageError(f"{directory}: unreadable index manifest ({exc}); delete the folder to rebuild it") from exc


__all__ = [
    "INDEX_KINDS",
    "ExactIndex",
    "IndexClass",
    "Labels",
    "Scores",
    "VectorIndex",
    "Vectors",
    "create_index",
    "index_kinds",
    "load_index",
    "read_manifest",
]
