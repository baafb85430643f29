"""Explanations of a search: the plan, each strategy's contribution and the ranker's features.

A mode handler returns only :class:`Hits`; the learned pipeline leaves its explanation in a
context variable that :func:`explained` reads back, so the engine's mode interface stays narrow.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..engine import Engine
    from ..modes import SearchMode
    from ..records import Hits, Query

_LAST: ContextVar[dict[str, Any] | None] = ContextVar("xmodal_ltr_explain", default=None)


def record(details: dict[str, Any]) -> None:
    """Called by a mode handler with what it did for the current query."""
    _LAST.set(details)


def explained(handler: SearchMode, engine: Engine, query: Query, vector: np.ndarray) -> tuple[Hits, dict[str, Any]]:
    """Run a mode handler and return its hits with its explanation (a bare one if it left none)."""
    token = _LAST.set(None)
    try:
        hits = handler(engine, query, vector)
        details = _LAST.get() or {"mode": query.mode}
    finally:
        _LAST.reset(token)
    details.setdefault("mode", query.mode)
    return hits, details
