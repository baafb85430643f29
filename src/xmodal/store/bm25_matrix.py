"""The full-text index's BM25F as postings arrays in memory: many queries scored without a SQL query each.

:class:`~xmodal.store.fulltext.FullText` scores a query with one SQL query over FTS5's postings (15 ms at
100k items): fine for a search, the larger part of a self-tuning fit that asks thousands of pseudo-queries
(:mod:`xmodal.ltr.selftune`). :class:`BM25Matrix` is a snapshot of the same index built from the rows'
stored terms that :class:`~xmodal.store.termstats.TermStats` already holds: per term, the rows that hold
it and the term's whole BM25F share of each row's score, ``idf · x / (k1 + x)`` with
``x = w_title · tf_title / norm_title + w_body · tf_body / norm_body`` — the per-field length
normalisation, field weights, ``k1``, ``b`` and Robertson–Spärck Jones idf that :mod:`.fulltext` computes,
read from the index itself, evaluated by the same floating-point operations in the same order. A query's
score is then the sum of its distinct known terms' shares (a ``np.bincount`` over their postings), equal to
the SQL path's to the last bits of a sum in another order; rows are ranked as it ranks them, best first and
ties by row.

A snapshot is only as current as the terms it was built from: :func:`matrix_of` builds one when every row's
terms are held (not for an index over :data:`~xmodal.store.termstats.MAX_ROWS` rows, nor for another kind
of :class:`~xmodal.store.textindex.TextIndex`) and keeps it while :meth:`TermStats.generation` has not moved
(any committed write moves it); the caller then scores with the index's own SQL instead.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .fulltext import FullText
from .postings import count_terms
from .termstats import TermStats
from .textindex import TextIndex

#: how long :func:`matrix_of` waits for the background pass to hold every row's terms
WAIT_S = 30.0


class BM25Matrix:
    """BM25F over a snapshot of the indexed rows' stored terms (``texts``: row -> space-joined title and body
    terms, as :meth:`TermStats.held_texts` gives them), scored as :class:`~xmodal.store.fulltext.FullText`
    scores with the same ``k1``, ``b`` and field ``weights``."""

    def __init__(
        self,
        texts: Mapping[int, tuple[str, str]],
        *,
        k1: float,
        b: float,
        weights: tuple[float, float],
        generation: int = 0,
    ) -> None:
        self.generation = generation
        self.rows = np.array(sorted(texts), dtype=np.int64)  #: the indexed rows, ascending (a column: its index)
        n = len(self.rows)
        rows = self.rows.tolist()
        # the postings: one per (term, column), term-major and columns ascending, with each field's count
        counted = count_terms(texts, enumerate(rows), n)
        assert counted is not None  # (no stop asked for)
        self.terms = counted.terms
        V = max(len(counted.terms), 1)
        title_len, body_len, term_of, col_of = counted.title_len, counted.body_len, counted.term_of, counted.at
        in_title, in_body = counted.in_title, counted.in_body
        df = np.bincount(term_of, minlength=V)
        # the totals and idf as FullText._stats computes them (Python floats, math.log)
        docs, title_total, body_total = n, int(title_len.sum()), int(body_len.sum())
        docs_or_1 = max(docs, 1)
        avg_title, avg_body = max(title_total / docs_or_1, 1e-9), max(body_total / docs_or_1, 1e-9)
        idf = np.array([max(math.log(1.0 + (docs - d + 0.5) / (d + 0.5)), 1e-6) for d in df.tolist()], dtype=np.float64)
        # the share of each posting, by FullText._run's operations: w·tf / ((1 − b) + (b / avg)·len) per field,
        # summed, then idf·x / (k1 + x)
        w_title, w_body = weights
        norm_title = (1 - b) + (b / avg_title) * title_len
        norm_body = (1 - b) + (b / avg_body) * body_len
        x = w_title * in_title / norm_title[col_of] + w_body * in_body / norm_body[col_of]
        self.shares = idf[term_of] * x / (k1 + x)  #: each posting's share of its row's score
        self.columns = col_of.astype(np.int32)  #: each posting's column (term-major)
        self.starts = np.searchsorted(term_of, np.arange(V + 1))  #: term t's postings: starts[t]:starts[t + 1]
        self.df = df
        # every share positive (the usual weights): a row holds a query term exactly when its score is above 0
        self._positive = bool(len(self.shares) == 0 or self.shares.min() > 0)

    def __len__(self) -> int:
        return len(self.rows)

    def allowed(self, rows: Iterable[int] | np.ndarray | None) -> np.ndarray:
        """A mask over the columns: which of them are among ``rows`` (None: none are)."""
        if rows is None:
            return np.zeros(len(self.rows), dtype=bool)
        wanted = np.fromiter(rows, dtype=np.int64) if not isinstance(rows, np.ndarray) else rows.astype(np.int64)
        return np.isin(self.rows, wanted)

    def scores(self, query_terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(columns, scores) of every row that holds a known query term, columns ascending: what
        :meth:`FullText.score` gives (each distinct term counted once; unknown terms add nothing)."""
        known = sorted({self.terms[t] for t in query_terms if t in self.terms})
        if not known:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        starts = self.starts
        if len(known) == 1:
            a, z = starts[known[0]], starts[known[0] + 1]
            return self.columns[a:z].astype(np.int64), self.shares[a:z].copy()
        cols = np.concatenate([self.columns[starts[t] : starts[t + 1]] for t in known])
        shares = np.concatenate([self.shares[starts[t] : starts[t + 1]] for t in known])
        total = np.bincount(cols, weights=shares, minlength=len(self.rows))
        if self._positive:
            matched = np.flatnonzero(total > 0)
        else:
            matched = np.flatnonzero(np.bincount(cols, minlength=len(self.rows)))
        return matched, total[matched]

    def top(self, query_terms: Sequence[str], depth: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``depth`` best (row, score) pairs among the rows that hold a query term and are ``allowed`` (a
        column mask, :meth:`allowed`; None: every row), best first, ties broken by row: what
        :meth:`FullText.top` returns."""
        if depth <= 0:
            return []
        cols, vals = self.scores(query_terms)
        if allowed is not None and len(cols):
            keep = allowed[cols]
            cols, vals = cols[keep], vals[keep]
        if len(cols) > depth:
            part = np.argpartition(-vals, depth - 1)[:depth]
            # the cut keeps every row tied with the last one kept, so the ties are broken by row below
            last = vals[part].min()
            part = np.flatnonzero(vals >= last)
            cols, vals = cols[part], vals[part]
        order = np.lexsort((cols, -vals))[:depth]  # columns ascend with rows: ties by row
        rows = self.rows[cols[order]]
        return [(int(r), float(s)) for r, s in zip(rows.tolist(), vals[order].tolist(), strict=True)]


class _Cache:
    """The latest matrix of one index, rebuilt when its terms' generation has moved."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.matrix: BM25Matrix | None = None


_CACHES: weakref.WeakKeyDictionary[TermStats, _Cache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def matrix_of(index: TextIndex, wait_s: float = WAIT_S) -> BM25Matrix | None:
    """A :class:`BM25Matrix` of ``index`` as it is now, or None when it cannot have one (not an SQLite
    :class:`FullText`, or its rows' terms are not all held, :meth:`TermStats.held_texts`): the caller scores
    with ``index`` then. Kept for the next call while nothing was written (one per index)."""
    if not isinstance(index, FullText):
        return None
    stats = index.stats
    with _CACHES_LOCK:
        cache = _CACHES.get(stats)
        if cache is None:
            cache = _CACHES[stats] = _Cache()
    with cache.lock:
        held = cache.matrix
        if held is not None and held.generation == stats.generation():
            return held
        cache.matrix = None  # stale: let it go before building the next
        found = stats.held_texts(wait_s)
        if found is None:
            return None
        generation, texts = found
        cache.matrix = BM25Matrix(texts, k1=index.k1, b=index.b, weights=index.weights, generation=generation)
        return cache.matrix


def prepare(index: TextIndex) -> None:
    """Start holding ``index``'s rows' terms in the background (:meth:`TermStats.load`) for a matrix wanted
    soon (nothing for another kind of index)."""
    if isinstance(index, FullText):
        index.stats.load()


def release(index: TextIndex) -> None:
    """Drop the matrix kept for ``index`` (a fit that is over frees its memory)."""
    if isinstance(index, FullText):
        with _CACHES_LOCK:
            cache = _CACHES.get(index.stats)
        if cache is not None:
            with cache.lock:
                cache.matrix = None
