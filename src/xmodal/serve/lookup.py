"""Engine look-ups shared by the REST routes and the MCP tools (no web framework needed here)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engine import Engine, SearchResult
from ..errors import NotFoundError, ValidationError
from ..records import Item, VectorKind
from .writer import QueueFull


def best_vector(engine: Engine, item_id: str) -> np.ndarray:
    """An item's combined vector, else its image vector, else its text vector (for "similar items")."""
    vectors = engine.vectors(item_id)
    for kind in (VectorKind.COMBINED, VectorKind.IMAGE, VectorKind.TEXT):
        if kind in vectors:
            return vectors[kind]
    raise ValidationError("id", f"item {item_id!r} has no vectors", "re-add the item")


def get_or_none(engine: Engine, item_id: str) -> Item | None:
    """The item, or ``None`` when it is gone (deleted since it was ranked)."""
    try:
        return engine.get(item_id)
    except NotFoundError:
        return None


def search_consistently(run: Callable[[], SearchResult], attempts: int = 3) -> SearchResult:
    """Run a search again when a concurrent delete removed a hit between ranking and fetching it.

    ``Engine.search`` ranks under its lock and fetches the items after releasing it, so a write in
    between surfaces as a bare ``KeyError`` (a ``NotFoundError`` is a real answer and passes through).
    After ``attempts`` tries it gives up with :class:`QueueFull` (503, retry)."""
    for attempt in range(attempts):
        try:
            return run()
        except KeyError as exc:
            if isinstance(exc, NotFoundError):
                raise
            if attempt == attempts - 1:
                raise QueueFull(f"the index changed during the search {attempts} times in a row") from None
    raise AssertionError("unreachable")
