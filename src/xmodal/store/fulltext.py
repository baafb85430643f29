"""The store's full-text index: BM25F over a SQLite FTS5 table, written in the item's transaction.

Each item's title and body are analyzed (:mod:`.analysis`: tokens, Snowball stems) and stored as
space-joined terms in the two columns of an FTS5 table whose tokenizer splits on spaces only, so one
stored term is one FTS5 token. Beside it, ``fulltext_sizes`` holds each row's field lengths and
``fulltext_totals`` the item count and length sums. The store writes all three in the same
transaction as the item, so a committed item is searchable and a deleted one never is: there is no
dump, checkpoint or catch-up.

Scoring is BM25F (S. Robertson, H. Zaragoza and M. Taylor, "Simple BM25 extension to multiple
weighted fields", CIKM 2004): per field, a term's count is normalised by that field's length
against its average, weighted (title above body) and summed; the sum is saturated once with ``k1``
and multiplied by the Robertson–Spärck Jones idf ``log(1 + (N − df + 0.5) / (df + 0.5))``. The term
counts come from FTS5's own postings (an ``fts5vocab`` instance table), the sums run in SQL — or, once the
term statistics hold every row's terms (:mod:`.termstats`), on the same postings held in memory
(:mod:`.postings`), with the same operations and the same scores.
FTS5's built-in ``bm25()`` was measured as the alternative and ranks worse on the demo's judged
set (nDCG@10 0.464 against 0.489): it normalises by the whole item's length, not per field, and its
idf drops to zero for terms in more than half the items (docs/benchmarks/lexical.md).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import NamedTuple

import numpy as np

from ..errors import StorageError
from .analysis import ANALYZER, terms
from .readers import Readers
from .termstats import TermStats

# One FTS5 token per stored term: every Unicode category is a token character, only spaces separate.
_TOKENIZE = "unicode61 remove_diacritics 0 categories 'L* M* N* P* S* C* Zl Zp'"
SCHEMA = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS fulltext USING fts5(title, body, tokenize="{_TOKENIZE}");
CREATE TABLE IF NOT EXISTS fulltext_sizes (
    row INTEGER PRIMARY KEY,
    title INTEGER NOT NULL,
    body INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fulltext_totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    docs INTEGER NOT NULL,
    title INTEGER NOT NULL,
    body INTEGER NOT NULL
);
INSERT OR IGNORE INTO fulltext_totals VALUES (0, 0, 0, 0);
"""
# Per-connection views of FTS5's postings: document frequencies, and every occurrence (row, column).
_VOCAB = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fulltext_rows USING fts5vocab(main, fulltext, row)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fulltext_instances USING fts5vocab(main, fulltext, instance)",
)
#: BM25F's constants, kept in this one place: :class:`FullText`'s defaults, and the PostgreSQL backend's
#: (:mod:`.postgres_fulltext`). Every other scorer of the stored terms reads them off the index instance
#: (``index.k1``, ``index.b``, ``index.weights``): the self-tuner's batched BM25 matrix (:mod:`.bm25_matrix`),
#: the ranker's ``bm25`` feature and score completion. A field added to the layout (e.g. a lower-weighted one for
#: usage examples, measured in docs/benchmarks.md, issue 19) is added to each of them too.
K1 = 1.2
B = 0.75
FIELD_WEIGHTS = (3.0, 1.0)  # (title, body)
META_KEY = "fulltext_analyzer"
#: a term in more than this share of the items is "frequent": a top-k query skips its posting list when it can
FREQUENT_SHARE = 0.05


def vocabulary(db: sqlite3.Connection) -> None:
    """Create the connection's views of FTS5's postings (each connection needs its own: they are temporary)."""
    for statement in _VOCAB:  # execute, never executescript: that would commit the caller's transaction
        db.execute(statement)


class _Stats(NamedTuple):
    """What scoring a query needs: the idf of each known query term, the average title and body lengths,
    the item count and each known term's document frequency."""

    idf: dict[str, float]
    fields: tuple[float, float]
    docs: int
    df: dict[str, int]


def _best_first(pair: tuple[int, float]) -> tuple[float, int]:
    return -pair[1], pair[0]


class FullText:
    """BM25F search over the store's FTS5 table; writes join the caller's open transaction."""

    def __init__(
        self,
        db: sqlite3.Connection,
        lock: AbstractContextManager[object],
        *,
        readers: Readers | None = None,
        k1: float = K1,
        b: float = B,
        weights: tuple[float, float] = FIELD_WEIGHTS,
    ) -> None:
        self._db, self._lock, self._readers = db, lock, readers
        self.k1, self.b, self.weights = k1, b, weights
        vocabulary(db)
        #: document frequencies and totals, held in memory and kept in step with the writes (:mod:`.termstats`)
        self.stats = TermStats(db, lock, self._reading, background=readers is not None)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection searches read from: the calling thread's reader (:mod:`.readers`) when the store has
        them, so a long query holds up no other; else the store's own, under its lock."""
        if self._readers is not None:
            with self._readers.reading() as db:
                yield db
        else:
            with self._lock:
                yield self._db

    # -- schema --------------------------------------------------------------------------------
    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        """Create the tables (inside the caller's transaction); fails clearly without FTS5."""
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                try:
                    db.execute(statement)
                except sqlite3.OperationalError as exc:
                    if "fts5" not in str(exc):
                        raise
                    raise StorageError(
                        f"this SQLite ({sqlite3.sqlite_version}) lacks FTS5 ({exc}); use a Python whose "
                        "sqlite3 module is built with FTS5 (the python.org and Linux distribution builds are)"
                    ) from exc

    @staticmethod
    def analyzer() -> str:
        """The analyzer the stored terms must come from (recorded in the store's metadata)."""
        return ANALYZER

    def rebuild(self, items: Iterable[tuple[int, str, str]]) -> int:
        """Replace the whole index by (row, title, text) of every item; the caller holds a transaction."""
        self._db.execute("DELETE FROM fulltext")
        self._db.execute("DELETE FROM fulltext_sizes")
        self._db.execute("UPDATE fulltext_totals SET docs = 0, title = 0, body = 0")
        n = 0
        for row, title, text in items:
            self.put(row, title, text)
            n += 1
        return n

    # -- writes (the caller holds the lock and an open transaction) ----------------------------
    def begin(self) -> None:
        """The store opened a write transaction (see :class:`.termstats.TermStats`: the writes that follow are
        counted into the statistics held once it commits)."""
        self.stats.begin()

    def committing(self) -> None:
        """The store is about to commit the transaction."""
        self.stats.committing()

    def ended(self, committed: bool) -> None:
        """The store's transaction committed (or rolled back: nothing it wrote is counted)."""
        if committed:
            self.stats.committed()
        else:
            self.stats.rolled_back()

    def put(self, row: int, title: str, text: str) -> None:
        """Index (or re-index) one row's title and body."""
        self.put_many([(row, title, text)])

    def put_many(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """:meth:`put` for each (row, title, text), written by a few statements for the whole batch (a row given
        twice is indexed as its last)."""
        latest = {row: (title, text) for row, title, text in rows}
        if not latest:
            return
        ordered = list(latest)
        for start in range(0, len(ordered), 500):  # rows indexed already (replacements) lose their old terms
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for (row,) in self._db.execute(f"SELECT row FROM fulltext_sizes WHERE row IN ({marks})", chunk).fetchall():
                self.remove(int(row))
        written: list[tuple[int, str, str]] = []
        sizes: list[tuple[int, int, int]] = []
        for row, (title, text) in latest.items():
            title_terms, body_terms = terms(title), terms(text)
            stored = (" ".join(title_terms), " ".join(body_terms))
            written.append((row, *stored))
            sizes.append((row, len(title_terms), len(body_terms)))
            self.stats.added(title_terms, body_terms)
            self.stats.touched(row, stored)
        self._db.executemany("INSERT INTO fulltext (rowid, title, body) VALUES (?, ?, ?)", written)
        self._db.executemany("INSERT INTO fulltext_sizes VALUES (?, ?, ?)", sizes)
        self._db.execute(
            "UPDATE fulltext_totals SET docs = docs + ?, title = title + ?, body = body + ?",
            (len(sizes), sum(s[1] for s in sizes), sum(s[2] for s in sizes)),
        )

    def remove(self, row: int) -> None:
        """Drop one row from the index (nothing happens when it is not there)."""
        found = self._db.execute("SELECT title, body FROM fulltext_sizes WHERE row = ?", (row,)).fetchone()
        if found is None:
            return
        self.stats.touched(row, None)
        old = ("", "")
        if self.stats.tracking():  # the terms it had: their document frequencies drop
            old = self._db.execute("SELECT c0, c1 FROM fulltext_content WHERE id = ?", (row,)).fetchone() or old
        self.stats.removed(str(old[0] or "").split(), str(old[1] or "").split())
        self._db.execute("DELETE FROM fulltext WHERE rowid = ?", (row,))
        self._db.execute("DELETE FROM fulltext_sizes WHERE row = ?", (row,))
        self._db.execute(
            "UPDATE fulltext_totals SET docs = docs - 1, title = title - ?, body = body - ?", (found[0], found[1])
        )

    def optimize(self) -> None:
        """Merge the index's segments into one (FTS5 ``optimize``): a removed row's postings are gone from
        the file, not only marked deleted. Rewrites the whole index: run it after deletes, not per write."""
        self._db.execute("INSERT INTO fulltext (fulltext) VALUES ('optimize')")

    def close(self) -> None:
        """Stop the statistics' background pass."""
        self.stats.close()

    # -- reads ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._reading() as db:
            return int(db.execute("SELECT docs FROM fulltext_totals").fetchone()[0])

    def known_fraction(self, query_terms: Sequence[str]) -> float:
        """Share of the terms that occur in the index (a query-understanding feature)."""
        if not query_terms:
            return 0.0
        df = self.frequencies(query_terms)
        return sum(df.get(t, 0) > 0 for t in query_terms) / len(query_terms)

    def score(self, query_terms: Sequence[str], allowed: set[int] | None = None) -> dict[int, float]:
        """BM25F score of every item that holds a query term (and is allowed), by row."""
        stats = self._stats(query_terms)
        if stats is None:
            return {}
        pairs = self._held(stats, None)
        if pairs is None:
            pairs = self._run(query_terms, None, stats)
        if allowed is None:
            return dict(pairs)
        return {row: s for row, s in pairs if row in allowed}

    def top(self, query_terms: Sequence[str], depth: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``depth`` best (row, score) pairs among allowed rows, ties broken by row.

        Filters apply before the cut: with ``allowed`` every matching row is scored and the allowed
        ones ranked, so ``depth`` hits come back whenever that many allowed items hold a query term.
        """
        if depth <= 0 or (allowed is not None and not allowed):
            return []
        if allowed is None:
            stats = self._stats(query_terms)
            if stats is None:
                return []
            held = self._held(stats, depth)  # the postings in memory, once held (:mod:`.postings`): no SQL
            if held is not None:
                return held
            return self._top_skipping_frequent(query_terms, depth, stats)
        ranked = sorted(self.score(query_terms, allowed).items(), key=_best_first)
        return ranked[:depth]

    def score_rows(self, query_terms: Sequence[str], rows: Sequence[int]) -> np.ndarray:
        """BM25F of the given rows only (0 for rows without a query term): the ranker's feature."""
        stats = self._stats(query_terms)
        if stats is None or not rows:
            return np.zeros(len(rows))
        return self._score_texts(stats.idf, stats.fields, rows)

    # -- internals -----------------------------------------------------------------------------
    def _held(self, stats: _Stats, depth: int | None) -> list[tuple[int, float]] | None:
        """What :meth:`_run` gives (rows ascending, or the ``depth`` best), scored on the postings held in
        memory (the same scores as its SQL), or None when they are not held."""
        return self.stats.scored(stats.idf, stats.fields, depth, k1=self.k1, b=self.b, weights=self.weights)

    def _score_texts(self, idf: dict[str, float], fields: tuple[float, float], rows: Sequence[int]) -> np.ndarray:
        """BM25F of the rows for the terms of ``idf`` (``fields``: the average field lengths), counted in each
        row's stored terms (for a few rows, not one term's whole posting list); ``idf`` comes from
        :meth:`_stats` just before."""
        avg_title, avg_body = fields
        out = np.zeros(len(rows))
        # held in memory once read (:mod:`.termstats`); both callers looked the terms up just before
        texts = self.stats.texts(rows, self._read_texts, checked=True)
        (w_title, w_body), k1, b = self.weights, self.k1, self.b
        weighted = list(idf.items())
        terms = list(idf)
        for i, row in enumerate(rows):
            found = texts.get(row)
            if found is None:
                continue
            title_text, body_text = found
            for term in terms:  # a substring test first: most candidates of other strategies share no term
                if term in title_text or term in body_text:
                    break
            else:
                continue
            title, body = title_text.split(), body_text.split()
            norm_title, norm_body = (1 - b) + (b / avg_title) * len(title), (1 - b) + (b / avg_body) * len(body)
            total = 0.0
            for term, weight in weighted:
                in_title, in_body = title.count(term), body.count(term)
                if in_title or in_body:
                    tf = w_title * in_title / norm_title + w_body * in_body / norm_body
                    total += weight * tf / (k1 + tf)
            out[i] = total
        return out

    def _read_texts(self, rows: Sequence[int]) -> list[tuple[int, str, str]]:
        """(row, title terms, body terms) of each row that is indexed, read from the store."""
        out: list[tuple[int, str, str]] = []
        with self._reading() as db:
            for start in range(0, len(rows), 500):
                chunk = list(rows[start : start + 500])
                marks = ",".join("?" * len(chunk))
                # FTS5's own content table (``<table>_content``, columns c0, c1), read by its primary key:
                # a plain B-tree lookup, half the cost of the same read through the virtual table
                sql = f"SELECT id, c0, c1 FROM fulltext_content WHERE id IN ({marks})"
                out.extend((int(r), str(t or ""), str(b or "")) for r, t, b in db.execute(sql, chunk))
        return out

    def _top_skipping_frequent(self, query_terms: Sequence[str], depth: int, stats: _Stats) -> list[tuple[int, float]]:
        """The ``depth`` best rows without walking the posting lists of very frequent terms (MaxScore).

        A term adds less than its idf to any row's score (``x / (k1 + x) < 1``), so the frequent terms
        together add less than ``bound``, the sum of their idfs. Rows are scored on the other terms first;
        ``floor``, the ``depth``-th best of those partial scores, is at most the final ``depth``-th best
        score. A row whose partial score is below ``floor - bound`` (or that holds only frequent terms,
        when ``bound < floor``) stays below it; the others get the frequent terms' share from their
        stored terms. Where no such cut exists, every posting is scored in SQL as before. The ranking is
        the full query's; a score may differ from it in the last bits (another summation order).
        ``stats``: the query's (:meth:`_stats`)."""
        idf, fields = stats.idf, stats.fields
        frequent = {t: w for t, w in idf.items() if stats.df[t] > stats.docs * FREQUENT_SHARE}
        rare = [t for t in idf if t not in frequent]
        if not frequent or not rare:
            return self._run(query_terms, depth, stats)
        partial = self._run(rare, None)
        bound = sum(frequent.values())
        floor = sorted((s for _, s in partial), reverse=True)[depth - 1] if len(partial) >= depth else 0.0
        if bound >= floor:
            return self._run(query_terms, depth, stats)
        pool = [(row, s) for row, s in partial if s >= floor - bound]
        extra = self._score_texts(frequent, fields, [row for row, _ in pool])
        ranked = sorted(((row, s + float(x)) for (row, s), x in zip(pool, extra, strict=True)), key=_best_first)
        return ranked[:depth]

    def frequencies(self, query_terms: Sequence[str]) -> dict[str, int]:
        """Document frequency of each distinct term in the index, in the query's order (absent: in no item)."""
        found = self.stats.lookup(query_terms, totals=False)[1]
        return {t: found[t] for t in query_terms if found[t]}

    def _stats(self, query_terms: Sequence[str]) -> _Stats | None:
        """The query terms' statistics (:class:`_Stats`), or None when nothing can match."""
        if not query_terms:
            return None
        totals, found = self.stats.lookup(query_terms)
        assert totals is not None
        n, title, body = totals
        df = {t: found[t] for t in query_terms if found[t]}
        if n == 0 or not df:
            return None
        idf = {t: max(math.log(1.0 + (n - d + 0.5) / (d + 0.5)), 1e-6) for t, d in df.items() if d}
        return _Stats(idf, (max(title / n, 1e-9), max(body / n, 1e-9)), n, df)

    def _run(
        self, query_terms: Sequence[str], depth: int | None, stats: _Stats | None = None
    ) -> list[tuple[int, float]]:
        """BM25F of every matching row in SQL, best first when ``depth`` is given (then cut to it); ``stats``: the
        query's when the caller has them (:meth:`_stats`)."""
        if stats is None:
            stats = self._stats(query_terms)
        if stats is None:
            return []
        idf, (avg_title, avg_body) = stats.idf, stats.fields
        values = ",".join("(?, ?)" for _ in idf)
        params: list[object] = [x for pair in idf.items() for x in pair]
        b, k1 = self.b, self.k1
        params += [k1, self.weights[0], 1 - b, b / avg_title, self.weights[1], 1 - b, b / avg_body]
        sql = f"""
            WITH q(term, idf) AS (VALUES {values})
            SELECT row, SUM(idf * x / (? + x)) AS score FROM (
                SELECT i.doc AS row, q.idf AS idf,
                       ? * SUM(i.col = 'title') / (? + ? * s.title) + ? * SUM(i.col = 'body') / (? + ? * s.body) AS x
                FROM q JOIN temp.fulltext_instances AS i ON i.term = q.term
                JOIN fulltext_sizes AS s ON s.row = i.doc
                GROUP BY q.term, i.doc
            ) GROUP BY row
        """
        if depth is not None:
            sql += " ORDER BY score DESC, row LIMIT ?"
            params.append(depth)
        with self._reading() as db:
            return [(int(r), float(s)) for r, s in db.execute(sql, params)]
