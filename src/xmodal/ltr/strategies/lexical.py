"""Lexical retrieval: BM25F over title and body (the store's full-text index) with an optional prior.

The index lives in the store (:mod:`xmodal.store.fulltext`): BM25F after S. Robertson, H. Zaragoza
and M. Taylor, "Simple BM25 extension to multiple weighted fields" (CIKM 2004), over SQLite FTS5,
written in the same transaction as each item. The strategy therefore keeps no index of its own:
nothing to load when a process starts, nothing to write when it closes, nothing to catch up. A batch of
queries (:meth:`LexicalStrategy.retrieve_many`, the self-tuning fit's) is scored on a snapshot of the index's
postings in memory instead (:mod:`xmodal.store.bm25_matrix`: the same BM25F and ranking, no SQL per query).

Typos are tolerated: a query word that no item holds, and that could be a typo, is read as the catalog's
commonest word one edit away (:mod:`xmodal.ltr.spelling`) on every path (runs, batches, scored rows); the
default mode's ``explain`` names such words under ``strategies.lexical.read_as``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...courtesy import step_aside
from ...records import Hits, Item, Query
from ...store.bm25_matrix import BM25Matrix, matrix_of
from ...store.fulltext import FullText
from ...store.textindex import TextIndex
from ..spelling import Reading, read_query
from ..text import stems
from .base import Request, allowed_rows, hits_from_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView

FIELDS = ("title", "body")
#: queries of a batch scored between two :func:`~xmodal.courtesy.step_aside` points
STEP = 64
#: query readings kept (for one catalog state; then they start again)
READINGS = 1024
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
        self._readings: dict[str, Reading] = {}  # query text → its reading, for the catalog state below
        self._readings_seq = -1

    # -- retrieval -----------------------------------------------------------------------------
    def read(self, query: Query) -> Reading:
        """The query's index terms, a word that no item holds read as the catalog's commonest word one edit
        away when it could be a typo (:mod:`xmodal.ltr.spelling`). Kept for the catalog's state: a search
        reads its query for its run, its scored rows and its explanation."""
        text, seq = query.text or "", self.engine.applied_seq()
        if seq != self._readings_seq or len(self._readings) >= READINGS:
            self._readings, self._readings_seq = {}, seq
        found = self._readings.get(text)
        if found is None:
            found = self._readings[text] = read_query(text, self.index.frequencies)
        return found

    def _prior(self) -> bool:
        return bool(self.popularity_weight and self.popularity)

    def scores(self, query: Query) -> dict[int, float]:
        """BM25F (+ prior) per matching, allowed row."""
        scores = self.index.score(self.read(query).terms, allowed_rows(self.engine, query))
        if self._prior():
            for row in scores:
                pop = self.popularity.get(self.engine.find_id(row) or "", 0.0)
                scores[row] += self.popularity_weight * math.log1p(pop)
        return scores

    def score_rows(self, query: Query, rows: Sequence[int], *, vector: np.ndarray | None = None) -> np.ndarray | None:
        """BM25F (+ prior) of each row, as :meth:`retrieve` scores it (0 for a row with no query term)."""
        scores = np.asarray(self.index.score_rows(self.read(query).terms, rows), dtype=np.float64)
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
            pairs = self.index.top(self.read(query).terms, depth, allowed_rows(self.engine, query))
        return hits_from_rows(self.engine, pairs, self.name)

    def matrix(self) -> BM25Matrix | None:
        """The index's BM25F as postings in memory (:mod:`xmodal.store.bm25_matrix`) for scoring many queries,
        or None where it has none (the rows' terms not all held, another store's index): score with SQL then."""
        return matrix_of(self.index)

    def retrieve_many(self, requests: Sequence[Request]) -> list[Hits]:
        """:meth:`retrieve` for each request, in order: scored on the index's postings in memory
        (:meth:`matrix`, the same BM25F and ranking) rather than one SQL query each; query by query when it has
        none, or with a popularity prior."""
        matrix = None if self._prior() else self.matrix()
        if matrix is None:
            return [self.retrieve(query, depth, vector=vector) for query, depth, vector in requests]
        masks: dict[str, np.ndarray | None] = {}  # per distinct filters: the allowed columns (None: all)
        out = []
        for i, (query, depth, _) in enumerate(requests):
            if i % STEP == 0:
                step_aside()
            mask = None
            if query.filters:
                key = json.dumps(query.filters, sort_keys=True, default=repr)
                if key not in masks:
                    rows = self.engine.match_rows(query.filters)
                    masks[key] = None if rows is None else matrix.allowed(rows)
                mask = masks[key]
            pairs = matrix.top(self.read(query).terms, depth, mask) if mask is None or mask.any() else []
            out.append(hits_from_rows(self.engine, pairs, self.name))
        return out
