"""The ``TextIndex`` seam: what searches read from a store's full-text index (BM25F over analyzed terms).

:class:`~xmodal.store.fulltext.FullText` (SQLite FTS5) and
:class:`~xmodal.store.postgres_fulltext.PostgresFullText` implement it; both score with the same BM25F, so
a catalog ranks the same on either store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextIndex(Protocol):
    """BM25F over the items' analyzed titles and bodies, written in the items' own transactions."""

    def __len__(self) -> int:
        """How many items are indexed."""
        ...

    def frequencies(self, query_terms: Sequence[str]) -> dict[str, int]:
        """The document frequency of each distinct term that occurs in the index (a term in no item is absent)."""
        ...

    def known_fraction(self, query_terms: Sequence[str]) -> float:
        """Share of the terms that occur in the index."""
        ...

    def score(self, query_terms: Sequence[str], allowed: set[int] | None = None) -> dict[int, float]:
        """BM25F score of every item that holds a query term (and is allowed)."""
        ...

    def top(self, query_terms: Sequence[str], depth: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``depth`` best (row, score) pairs among allowed rows, ties broken by row."""
        ...

    def score_rows(self, query_terms: Sequence[str], rows: Sequence[int]) -> np.ndarray:
        """BM25F of the given rows only (0 for rows without a query term)."""
        ...
