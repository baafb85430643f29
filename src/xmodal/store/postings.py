"""The full-text index's postings held in memory, kept in step with every write: a query scored without SQL.

:class:`~xmodal.store.fulltext.FullText` scores a query with one SQL query over FTS5's postings (≈ 0.1–0.3 ms
at 20k items, most of a lexical run). Once :class:`~xmodal.store.termstats.TermStats` holds every indexed
row's stored terms (its background pass, which the first search starts: nothing is read when the index opens),
it also holds them inverted here: per term, the rows that hold it with their title and body counts, and per
row its field lengths. It is kept exact as :class:`~xmodal.store.termstats.TermStats` keeps the terms: this
store's committed writes, and another connection's item writes read back through the change log, are applied
to it (a row's old postings out, its new ones in), and whatever drops the held terms (a burst of other
connections' writes, a write outside a transaction, an index grown past the limits) drops it too, until the
next background pass holds everything again; meanwhile the SQL path scores.

:meth:`Postings.scores` computes BM25F as :meth:`FullText._run <xmodal.store.fulltext.FullText._run>`'s SQL
does, operation for operation (per field ``w · tf / ((1 − b) + (b / avg) · len)``, summed, then
``idf · x / (k1 + x)``), and sums a row's terms in their sorted order, as SQLite's ``SUM`` over its
term-ordered postings does: the same scores, so the same ranking (``tests/test_postings.py`` compares the two
on random catalogs through adds, replacements and deletes).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import numpy as np

#: postings held at most (16 bytes each, plus ≈ 150 bytes a term): a larger index is scored in SQL
MAX_POSTINGS = 4_000_000
#: a query whose terms have at most this many postings together is scored in plain Python (the same
#: operations on the same doubles), more are scored with NumPy
SMALL = 48
_LOW = (1 << 32) - 1


class Postings:
    """Per term: the rows that hold it, ascending (``array('q')``), and, aligned, each row's count in the title
    and in the body packed as ``title << 32 | body``; per row: its title and body lengths (0: not indexed). Not
    thread-safe: :class:`~xmodal.store.termstats.TermStats` uses it under the store's lock."""

    __slots__ = ("_body_len", "_rows", "_tfs", "_title_len", "size")

    def __init__(self) -> None:
        self._rows: dict[str, array[int]] = {}
        self._tfs: dict[str, array[int]] = {}
        self._title_len: array[int] = array("q")  # by row (read through NumPy views while the lock is held)
        self._body_len: array[int] = array("q")
        self.size = 0  #: postings held

    @classmethod
    def of(cls, texts: Mapping[int, tuple[str, str]], stop: Callable[[], bool] | None = None) -> Postings | None:
        """The postings of every row's stored (title, body) terms, space-joined (as the index stores them), built
        at once (what :meth:`add` of each row gives); None when ``stop()`` turns true on the way (asked every
        1,000 rows: a closing store does not wait for it)."""
        postings = cls()
        if not texts:
            return postings
        rows = sorted(texts)
        counted = count_terms(texts, zip(rows, rows, strict=True), rows[-1] + 1, stop)
        if counted is None:
            return None
        tfs = counted.in_title << 32 | counted.in_body
        starts = np.searchsorted(counted.term_of, np.arange(len(counted.terms) + 1)).tolist()
        for term, t_id in counted.terms.items():
            a, z = starts[t_id], starts[t_id + 1]
            postings._rows[term] = array("q", counted.at[a:z].tobytes())
            postings._tfs[term] = array("q", tfs[a:z].tobytes())
        postings._title_len = array("q", counted.title_len.tobytes())
        postings._body_len = array("q", counted.body_len.tobytes())
        postings.size = len(counted.term_of)
        return postings

    def add(self, row: int, title: str, body: str) -> None:
        """Index ``row``'s stored terms (it is not indexed: :meth:`remove` it first)."""
        title_terms, body_terms = title.split(), body.split()
        if row >= len(self._title_len):
            more = bytes(8 * (max(row + 1, 2 * len(self._title_len), 1024) - len(self._title_len)))
            self._title_len.frombytes(more)
            self._body_len.frombytes(more)
        self._title_len[row], self._body_len[row] = len(title_terms), len(body_terms)
        in_title, in_body = Counter(title_terms), Counter(body_terms)
        rows, tfs = self._rows, self._tfs
        for term in in_title.keys() | in_body.keys():
            tf = in_title.get(term, 0) << 32 | in_body.get(term, 0)
            held = rows.get(term)
            if held is None:
                rows[term], tfs[term] = array("q", (row,)), array("q", (tf,))
            elif held[-1] < row:  # rows mostly come in ascending order
                held.append(row)
                tfs[term].append(tf)
            else:
                at = bisect_left(held, row)
                held.insert(at, row)
                tfs[term].insert(at, tf)
            self.size += 1

    def remove(self, row: int, title: str, body: str) -> None:
        """Drop ``row``'s postings (``title``, ``body``: the stored terms it was indexed with)."""
        rows, tfs = self._rows, self._tfs
        for term in set(title.split()).union(body.split()):
            held = rows.get(term)
            if held is None:
                continue
            at = bisect_left(held, row)
            if at == len(held) or held[at] != row:
                continue
            del held[at]
            del tfs[term][at]
            self.size -= 1
            if not held:
                del rows[term], tfs[term]
        if row < len(self._title_len):
            self._title_len[row] = self._body_len[row] = 0

    def pairs(
        self,
        idf: Mapping[str, float],
        fields: tuple[float, float],
        depth: int | None,
        *,
        k1: float,
        b: float,
        weights: tuple[float, float],
    ) -> list[tuple[int, float]]:
        """(row, BM25F score) of every row that holds a term of ``idf`` (each term's idf; ``fields``: the
        average title and body lengths), as :meth:`FullText._run`'s SQL computes them: rows ascending, or with
        ``depth`` the ``depth`` best, best first, ties broken by row (``ORDER BY score DESC, row LIMIT depth``)."""
        terms = sorted(t for t in idf if t in self._rows)  # SQLite's SUM adds a row's terms in this order
        if sum(len(self._rows[t]) for t in terms) > SMALL:
            found, scores = self._scores(idf, terms, fields, k1=k1, b=b, weights=weights)
            if depth is None:
                return list(zip(found.tolist(), scores.tolist(), strict=True))
            return best(found, scores, depth)
        (w_title, w_body), (avg_title, avg_body) = weights, fields
        keep_title, per_title, keep_body, per_body = 1 - b, b / avg_title, 1 - b, b / avg_body
        title_len, body_len = self._title_len, self._body_len
        total: dict[int, float] = {}
        for term in terms:
            weight = idf[term]
            for row, tf in zip(self._rows[term], self._tfs[term], strict=True):
                x = w_title * (tf >> 32) / (keep_title + per_title * title_len[row]) + w_body * (tf & _LOW) / (
                    keep_body + per_body * body_len[row]
                )
                total[row] = total.get(row, 0.0) + weight * x / (k1 + x)
        if depth is None:
            return sorted(total.items())
        return sorted(total.items(), key=_best_first)[:depth] if depth > 0 else []

    def _scores(
        self,
        idf: Mapping[str, float],
        terms: list[str],
        fields: tuple[float, float],
        *,
        k1: float,
        b: float,
        weights: tuple[float, float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pairs` with NumPy: (rows ascending, scores) for the held ``terms`` (sorted)."""
        (w_title, w_body), (avg_title, avg_body) = weights, fields
        keep_title, per_title, keep_body, per_body = 1 - b, b / avg_title, 1 - b, b / avg_body
        all_rows: list[np.ndarray] = []
        all_shares: list[np.ndarray] = []
        for term in terms:
            rows = np.frombuffer(self._rows[term], dtype=np.int64).copy()  # a copy: the array may grow later
            tfs = np.frombuffer(self._tfs[term], dtype=np.int64).copy()
            # the lengths through views that are let go at once (a viewed array could not grow)
            title_len = np.frombuffer(self._title_len, dtype=np.int64)[rows]
            body_len = np.frombuffer(self._body_len, dtype=np.int64)[rows]
            x = w_title * (tfs >> 32) / (keep_title + per_title * title_len) + w_body * (tfs & _LOW) / (
                keep_body + per_body * body_len
            )
            all_rows.append(rows)
            all_shares.append(idf[term] * x / (k1 + x))
        if len(all_rows) == 1:
            return all_rows[0], all_shares[0]
        found, at = np.unique(np.concatenate(all_rows), return_inverse=True)
        # bincount adds each row's shares in the order given: the terms' sorted order, as SQLite's SUM
        return found, np.bincount(at, weights=np.concatenate(all_shares), minlength=len(found))


def _best_first(pair: tuple[int, float]) -> tuple[float, int]:
    return -pair[1], pair[0]


def best(rows: np.ndarray, scores: np.ndarray, depth: int) -> list[tuple[int, float]]:
    """The ``depth`` best (row, score) pairs, best first, ties broken by row (``ORDER BY score DESC, row``)."""
    if depth <= 0 or not len(rows):
        return []
    if len(rows) > depth:
        part = np.argpartition(-scores, depth - 1)[:depth]
        part = np.flatnonzero(scores >= scores[part].min())  # and every row tied with the last kept
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))[:depth]
    return [(int(r), float(s)) for r, s in zip(rows[order].tolist(), scores[order].tolist(), strict=True)]


class Counted(NamedTuple):
    """The stored terms of some rows, counted (:func:`count_terms`)."""

    terms: dict[str, int]  #: term -> its id
    title_len: np.ndarray  #: by position: the title's and the body's lengths in terms (int64)
    body_len: np.ndarray
    #: each distinct (term id, position) pair, term-major and positions ascending, with its count in each field
    term_of: np.ndarray
    at: np.ndarray
    in_title: np.ndarray
    in_body: np.ndarray


def count_terms(
    texts: Mapping[int, tuple[str, str]],
    positions: Iterable[tuple[int, int]],
    n: int,
    stop: Callable[[], bool] | None = None,
) -> Counted | None:
    """The (title, body) stored terms (space-joined) of ``texts[row]`` counted at ``position``, for each
    (position, row) of ``positions`` (positions below ``n``, ascending); None when ``stop()`` turns true on the way
    (asked every 1,000 rows)."""
    terms: dict[str, int] = {}
    ids = terms.setdefault
    title_len, body_len = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    title_terms: list[int] = []
    body_terms: list[int] = []
    title_at: list[int] = []
    body_at: list[int] = []
    for i, (position, row) in enumerate(positions):
        if stop is not None and i % 1000 == 0 and stop():
            return None
        title, body = texts[row]
        t, bd = title.split(), body.split()
        title_len[position], body_len[position] = len(t), len(bd)
        title_terms += [ids(term, len(terms)) for term in t]
        body_terms += [ids(term, len(terms)) for term in bd]
        title_at += [position] * len(t)
        body_at += [position] * len(bd)
    width = max(n, 1)
    keys = np.concatenate(
        [
            np.asarray(title_terms, dtype=np.int64) * width + np.asarray(title_at, dtype=np.int64),
            np.asarray(body_terms, dtype=np.int64) * width + np.asarray(body_at, dtype=np.int64),
        ]
    )
    unique, inverse = np.unique(keys, return_inverse=True)
    in_title = np.bincount(inverse[: len(title_terms)], minlength=len(unique)).astype(np.int64)
    in_body = np.bincount(inverse[len(title_terms) :], minlength=len(unique)).astype(np.int64)
    return Counted(terms, title_len, body_len, unique // width, unique % width, in_title, in_body)
