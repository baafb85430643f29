"""xmodal: a self-hosted multimodal search and retrieval engine.

>>> import xmodal
>>> with xmodal.Engine.open("my-index", encoder="hashing") as engine:   # doctest: +SKIP
...     engine.add([xmodal.Item.create("1", title="a cup of coffee")])
...     engine.search("coffee").hits
"""

from __future__ import annotations

from ._version import __version__
from .engine import Engine
from .errors import (
    ConfigError,
    ImageError,
    MissingDependency,
    NotFoundError,
    StorageError,
    ValidationError,
    XmodalError,
)
from .ingest.prepare import AddReport, Rejection
from .records import Hits, Item, Modality, Query, Span, Target, VectorKind
from .results import SearchResult


def open(path: str, **options: object) -> Engine:  # noqa: A001 - the one-liner facade
    """Open or create an index folder: ``xmodal.open("idx").search("cat")``."""
    return Engine.open(path, **options)  # type: ignore[arg-type]


__all__ = [
    "AddReport",
    "ConfigError",
    "Engine",
    "Hits",
    "ImageError",
    "Item",
    "MissingDependency",
    "Modality",
    "NotFoundError",
    "Query",
    "Rejection",
    "SearchResult",
    "Span",
    "StorageError",
    "Target",
    "ValidationError",
    "VectorKind",
    "XmodalError",
    "__version__",
    "open",
]
