"""Vector backends: the :class:`VectorBackend` seam, the registry of backends, and ``local``.

A backend is chosen by name when an index is created (``Engine.open(path, backend="local")``, the CLI's
``--backend``), recorded in the index settings, and resolved again on every open: a built-in name, an
``xmodal.backends`` entry point of an installed package, or a dotted path ``"package.module:Class"``. Built in:
``local`` (the default), ``quantized`` (compressed vectors in memory, exact rescoring from disk) and
``milvus`` (a Milvus collection; ``pip install 'xmodal[milvus]'``).
"""

from __future__ import annotations

from ..registry import Registry
from .base import (
    BackendContext,
    BackendFactory,
    Purging,
    RowListing,
    RowMatcher,
    SharedCopy,
    SharedSettings,
    VectorBackend,
    VectorHits,
    is_backend_factory,
)

DEFAULT_BACKEND = "local"

#: Backends by name: registered here, ``xmodal.backends`` entry points, or ``"package.module:Class"``.
BACKENDS: Registry[BackendFactory] = Registry("backends", "vector backend", is_backend_factory)
BACKENDS.register("local", "xmodal.backends.local:LocalBackend")
BACKENDS.register("quantized", "xmodal.backends.quantized:QuantizedBackend")
BACKENDS.register("milvus", "xmodal.backends.milvus:MilvusBackend")  # pip install 'xmodal[milvus]'


def available_backends() -> list[str]:
    return BACKENDS.names()


def open_backend(name: str, context: BackendContext) -> VectorBackend:
    """Open the backend registered (or installed, or importable) as ``name``."""
    return BACKENDS.resolve(name).open(context)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "BackendContext",
    "SharedCopy",
    "SharedSettings",
    "BackendFactory",
    "Purging",
    "RowListing",
    "RowMatcher",
    "VectorBackend",
    "VectorHits",
    "available_backends",
    "open_backend",
]
