"""xmodal: a self-hosted multimodal search and retrieval engine.

>>> import xmodal
>>> with xmodal.Engine.open("my-index", encoder="hashing") as engine:   # doctest: +SKIP
...     engine.add([xmodal.Item.create("1", title="a cup of coffee")])
...     engine.search("coffee").hits
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .engine import Engine
from .errors import (
    AccessDenied,
    ConfigError,
    ConnectionFailed,
    ImageError,
    MissingDependency,
    NotFoundError,
    RemoteError,
    StorageError,
    ValidationError,
    XmodalError,
)
from .ingest.prepare import AddReport, Rejection
from .records import Hits, Item, Modality, Query, Span, Target, VectorKind
from .results import SearchResult

if TYPE_CHECKING:
    from .client import AsyncClient, Client


def open(path: str, **options: object) -> Engine:  # noqa: A001 - the one-liner facade
    """Open or create an index folder: ``xmodal.open("idx").search("cat")``."""
    return Engine.open(path, **options)  # type: ignore[arg-type]


def __getattr__(name: str) -> object:
    """``xmodal.Client`` and ``xmodal.AsyncClient``, imported when first used (they need httpx: the client
    extra), so that ``import xmodal`` needs none of it."""
    if name in ("Client", "AsyncClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'xmodal' has no attribute {name!r}")


__all__ = [
    "AccessDenied",
    "AddReport",
    "AsyncClient",
    "Client",
    "ConfigError",
    "ConnectionFailed",
    "Engine",
    "Hits",
    "ImageError",
    "Item",
    "MissingDependency",
    "Modality",
    "NotFoundError",
    "Query",
    "Rejection",
    "RemoteError",
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
