"""Engine look-ups shared by the REST routes and the MCP tools (no web framework needed here)."""

from __future__ import annotations

import numpy as np

from ..engine import Engine
from ..errors import NotFoundError, ValidationError
from ..records import Item, VectorKind


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
