"""The strategy interface and helpers shared by the candidate generators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ...records import Hits, Query

if TYPE_CHECKING:
    from ...extension import EngineView


@runtime_checkable
class Strategy(Protocol):
    """A candidate generator: ``retrieve(query, depth)`` returns at most ``depth`` hits, best first,
    each hit's provenance naming the strategy. ``vector`` is the already encoded query, if any."""

    name: str

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits: ...


#: One query's request to a strategy: the query, the depth wanted and its encoded vector (if any).
Request = tuple[Query, int, "np.ndarray | None"]


@runtime_checkable
class BatchStrategy(Strategy, Protocol):
    """A strategy that also answers many queries in one call: ``retrieve_many(requests)`` returns, for each
    ``(query, depth, vector)`` in order, exactly what ``retrieve(query, depth, vector=vector)`` would."""

    def retrieve_many(self, requests: Sequence[Request]) -> list[Hits]: ...


@runtime_checkable
class ScoringStrategy(Strategy, Protocol):
    """A strategy that can also score given items as its runs score them, on a scale where 0 means no
    evidence at all (BM25F: no query term) and its runs hold the best scores (score completion,
    :mod:`xmodal.ltr.completion`): ``score_rows(query, rows, vector=...)`` returns one raw score per row, or
    None when it cannot score this query."""

    def score_rows(
        self, query: Query, rows: Sequence[int], *, vector: np.ndarray | None = None
    ) -> np.ndarray | None: ...


#: the most query × item scores one matrix search of a batch holds at once (float32: 128 MB)
MATRIX_CELLS = 32_000_000


def matrix_rows(engine: EngineView) -> int:
    """How many queries one matrix search over the whole catalog takes (:data:`MATRIX_CELLS` scores)."""
    return max(1, MATRIX_CELLS // max(len(engine), 1))


def allowed_rows(engine: EngineView, query: Query) -> set[int] | None:
    """The rows that satisfy the query's filters, or None when it has none."""
    if not query.filters:  # what match_rows answers for no filter, without its read lock
        return None
    rows = engine.match_rows(query.filters)
    return None if rows is None else set(rows.tolist())


def top_rows(scores: dict[int, float], depth: int) -> list[tuple[int, float]]:
    """The ``depth`` best (row, score) pairs, ties broken by row for determinism."""
    if not scores:
        return []
    rows = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
    vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if len(rows) > depth:
        part = np.argpartition(-vals, depth - 1)[:depth]
        part = np.flatnonzero(vals >= vals[part].min())  # and every row tied with the last: ties go by row below
        rows, vals = rows[part], vals[part]
    order = np.lexsort((rows, -vals))[:depth]
    return [(int(rows[i]), float(vals[i])) for i in order]


def hits_from_rows(engine: EngineView, pairs: Sequence[tuple[int, float]], source: str) -> Hits:
    """Hits with item ids for (row, score) pairs; rows deleted meanwhile are skipped."""
    ids, scores = [], []
    find_id = engine.find_id
    for row, score in pairs:
        item_id = find_id(row)
        if item_id is not None:
            ids.append(item_id)
            scores.append(score)
    return Hits.of(ids, scores, source)
