"""The PostgreSQL store's full-text index: the same BM25F as :mod:`.fulltext`, over a postings table.

Each item's title and body are analyzed (:mod:`.analysis`); ``fulltext_postings`` holds one row per (term,
item) with the term's count in the title and in the body, ``fulltext_sizes`` each item's field lengths and
``fulltext_totals`` the item count and length sums. The store writes them in the item's own transaction, so
a committed item is searchable on every server and a deleted one on none. Scores are those of
:class:`~xmodal.store.fulltext.FullText` (BM25F, Robertson–Spärck Jones idf, title weighted above body).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .analysis import terms
from .fulltext import FIELD_WEIGHTS, K1, B

SCHEMA = """
CREATE TABLE IF NOT EXISTS fulltext_postings (
    term TEXT NOT NULL,
    row BIGINT NOT NULL,
    title INTEGER NOT NULL,
    body INTEGER NOT NULL,
    PRIMARY KEY (term, row)
);
CREATE INDEX IF NOT EXISTS fulltext_postings_row ON fulltext_postings(row);
CREATE TABLE IF NOT EXISTS fulltext_sizes (row BIGINT PRIMARY KEY, title INTEGER NOT NULL, body INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fulltext_totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    docs BIGINT NOT NULL,
    title BIGINT NOT NULL,
    body BIGINT NOT NULL
);
INSERT INTO fulltext_totals VALUES (0, 0, 0, 0) ON CONFLICT DO NOTHING
"""

#: runs one read statement and returns its rows (the store's connection, with its lock and retries)
Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def _best_first(pair: tuple[int, float]) -> tuple[float, int]:
    return -pair[1], pair[0]


class PostgresFullText:
    """BM25F over the PostgreSQL store's postings; writes run on the cursor of the store's transaction."""

    def __init__(
        self, query: Query, *, k1: float = K1, b: float = B, weights: tuple[float, float] = FIELD_WEIGHTS
    ) -> None:
        self._query = query
        self.k1, self.b, self.weights = k1, b, weights

    # -- writes (inside the store's transaction) -------------------------------------------------
    @staticmethod
    def put(cur: Any, texts: Sequence[tuple[int, str, str]]) -> None:
        """Index (or re-index) each (row, title, text); a row given twice keeps its last."""
        last = {row: (title, text) for row, title, text in texts}
        PostgresFullText.remove(cur, list(last))
        postings, sizes = [], []
        for row, (title, text) in last.items():
            title_terms, body_terms = terms(title), terms(text)
            in_title, in_body = Counter(title_terms), Counter(body_terms)
            postings += [(t, row, in_title.get(t, 0), in_body.get(t, 0)) for t in sorted(set(in_title) | set(in_body))]
            sizes.append((row, len(title_terms), len(body_terms)))
        if postings:
            cur.executemany("INSERT INTO fulltext_postings VALUES (%s, %s, %s, %s)", postings)
        if sizes:
            cur.executemany("INSERT INTO fulltext_sizes VALUES (%s, %s, %s)", sizes)
            cur.execute(
                "UPDATE fulltext_totals SET docs = docs + %s, title = title + %s, body = body + %s",
                (len(sizes), sum(s[1] for s in sizes), sum(s[2] for s in sizes)),
            )

    @staticmethod
    def remove(cur: Any, rows: Sequence[int]) -> None:
        """Drop rows from the index (rows not there are ignored)."""
        cur.execute(
            "WITH gone AS (DELETE FROM fulltext_sizes WHERE row = ANY(%s) RETURNING title, body)"
            " SELECT COUNT(*), COALESCE(SUM(title), 0), COALESCE(SUM(body), 0) FROM gone",
            (list(rows),),
        )
        found = cur.fetchone()
        if not found[0]:
            return
        cur.execute("DELETE FROM fulltext_postings WHERE row = ANY(%s)", (list(rows),))
        cur.execute(
            "UPDATE fulltext_totals SET docs = docs - %s, title = title - %s, body = body - %s",
            (int(found[0]), int(found[1]), int(found[2])),
        )

    # -- reads -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._query("SELECT docs FROM fulltext_totals", ())[0][0])

    def frequencies(self, query_terms: Sequence[str]) -> dict[str, int]:
        wanted = sorted(set(query_terms))
        if not wanted:
            return {}
        found = self._query(
            "SELECT term, COUNT(*) FROM fulltext_postings WHERE term = ANY(%s) GROUP BY term", (wanted,)
        )
        return {str(t): int(n) for t, n in found}

    def known_fraction(self, query_terms: Sequence[str]) -> float:
        if not query_terms:
            return 0.0
        df = self.frequencies(query_terms)
        return sum(df.get(t, 0) > 0 for t in query_terms) / len(query_terms)

    def _stats(self, query_terms: Sequence[str]) -> tuple[dict[str, float], tuple[float, float]] | None:
        if not query_terms:
            return None
        n, title, body = (int(x) for x in self._query("SELECT docs, title, body FROM fulltext_totals", ())[0])
        if n == 0:
            return None
        df = self.frequencies(query_terms)
        if not df:
            return None
        idf = {t: max(math.log(1.0 + (n - d + 0.5) / (d + 0.5)), 1e-6) for t, d in df.items() if d}
        return idf, (max(title / n, 1e-9), max(body / n, 1e-9))

    def _run(
        self, query_terms: Sequence[str], depth: int | None, rows: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25F of every matching row (of ``rows`` when given), best first and cut when ``depth`` is given."""
        stats = self._stats(query_terms)
        if stats is None:
            return []
        idf, (avg_title, avg_body) = stats
        b, k1 = self.b, self.k1
        params: list[Any] = [list(idf), list(idf.values()), k1]
        params += [self.weights[0], 1 - b, b / avg_title, self.weights[1], 1 - b, b / avg_body]
        where = ""
        if rows is not None:
            where = "WHERE p.row = ANY(%s)"
            params.append(list(rows))
        sql = f"""
            WITH q(term, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[]))
            SELECT row, SUM(idf * x / (%s + x)) AS score FROM (
                SELECT p.row AS row, q.idf AS idf,
                       %s * p.title / (%s + %s * s.title) + %s * p.body / (%s + %s * s.body) AS x
                FROM q JOIN fulltext_postings AS p ON p.term = q.term
                JOIN fulltext_sizes AS s ON s.row = p.row {where}
            ) AS t GROUP BY row
        """
        if depth is not None:
            sql += " ORDER BY score DESC, row LIMIT %s"
            params.append(depth)
        return [(int(r), float(s)) for r, s in self._query(sql, params)]

    def score(self, query_terms: Sequence[str], allowed: set[int] | None = None) -> dict[int, float]:
        pairs = self._run(query_terms, None)
        if allowed is None:
            return dict(pairs)
        return {row: s for row, s in pairs if row in allowed}

    def top(self, query_terms: Sequence[str], depth: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        if depth <= 0 or (allowed is not None and not allowed):
            return []
        if allowed is None:
            return self._run(query_terms, depth)
        return sorted(self.score(query_terms, allowed).items(), key=_best_first)[:depth]

    def score_rows(self, query_terms: Sequence[str], rows: Sequence[int]) -> np.ndarray:
        wanted = sorted({int(r) for r in rows if r >= 0})
        if not wanted:
            return np.zeros(len(rows))
        found = dict(self._run(query_terms, None, wanted))
        return np.asarray([found.get(int(r), 0.0) for r in rows], dtype=np.float64)
