"""Lexical retrieval: BM25F over title and body (the store's full-text index) with an optional prior.

The index lives in the store (:mod:`xmodal.store.fulltext`): BM25F after S. Robertson, H. Zaragoza
and M. Taylor, "Simple BM25 extension to multiple weighted fields" (CIKM 2004), over SQLite FTS5,
written in the same transaction as each item. The strategy therefore keeps no state of its own:
nothing to load when a process starts, nothing to write when it closes, nothing to catch up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Item, Query
from ...store.fulltext import FullText
from ...store.textindex import TextIndex
from ..text import stems
from .base import allowed_rows, hits_from_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView

FIELDS = ("title", "body")
BM25Index = FullText  # the name of the in-memory index this replaced (importers keep working)


def item_terms(item: Item) -> tuple[list[str], list[str]]:
    """Stemmed title terms and body terms, as the index stores them (attributes are the structured
    strategy's business)."""
    return stems(item.title), stems(item.text)


class LexicalStrategy:
    """BM25F candidates, plus ``popularity_weight · log(1 + popularity)`` for matching items."""

    name = "lexical"

    def __init__(self, engine: EngineView, *, popularity_weight: float = 0.0) -> None:
        self.engine = engine
        self.popularity_weight = popularity_weight
        self.popularity: dict[str, float] = {}
        self.index: TextIndex = engine.fulltext

    # -- retrieval -----------------------------------------------------------------------------
    def _prior(self) -> bool:
        return bool(self.popularity_weight and self.popularity)

    def scores(self, query: Query) -> dict[int, float]:
        """BM25F (+ prior) per matching, allowed row."""
        scores = self.index.score(stems(query.text or ""), allowed_rows(self.engine, query))
        if self._prior():
            for row in scores:
                pop = self.popularity.get(self.engine.find_id(row) or "", 0.0)
                scores[row] += self.popularity_weight * math.log1p(pop)
        return scores

    def score_rows(self, query: Query, rows: Sequence[int], *, vector: np.ndarray | None = None) -> np.ndarray | None:
        """BM25F (+ prior) of each row, as :meth:`retrieve` scores it (0 for a row with no query term)."""
        scores = np.asarray(self.index.score_rows(stems(query.text or ""), rows), dtype=np.float64)
        if self._prior():
            for i, row in enumerate(rows):
                if scores[i] > 0:
                    pop = self.popularity.get(self.engine.find_id(row) or "", 0.0)
                    scores[i] += self.popularity_weight * math.log1p(pop)
        return scores

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        """The ``depth`` best allowed items (filters apply before the cut)."""
        if self._prior():
            pairs = top_rows(self.scores(query), depth)
        else:
            pairs = self.index.top(stems(query.text or ""), depth, allowed_rows(self.engine, query))
        return hits_from_rows(self.engine, pairs, self.name)
