"""Search modes of the learned pipeline: ``learned``, ``uniform`` and one per single strategy.

Registered lazily in :mod:`xmodal.modes`; each records its explanation for ``explain=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..records import Hits, Query
from .explain import record
from .pipeline import pipeline

if TYPE_CHECKING:
    from ..engine import Engine


def learned(engine: Engine, query: Query, vector: np.ndarray) -> Hits:
    """Policy plan → strategies → fusion → ranker."""
    hits, details = pipeline(engine).search(query, vector)
    record(details)
    return hits


def uniform(engine: Engine, query: Query, vector: np.ndarray) -> Hits:
    """All available strategies, equal budget shares and weights, fused (the naive baseline)."""
    hits, details = pipeline(engine).uniform(query, vector)
    record(details)
    return hits


def _single(name: str) -> object:
    def handler(engine: Engine, query: Query, vector: np.ndarray) -> Hits:
        hits, details = pipeline(engine).single(name, query, vector)
        record(details)
        return hits

    handler.__name__ = name
    handler.__doc__ = f"The {name} strategy alone."
    return handler


lexical = _single("lexical")
structured = _single("structured")
memory = _single("memory")
explore = _single("explore")
