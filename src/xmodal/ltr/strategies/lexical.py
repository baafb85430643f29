"""Lexical retrieval: BM25F over title and body with an optional popularity prior.

BM25F after S. Robertson, H. Zaragoza and M. Taylor, "Simple BM25 extension to multiple weighted
fields" (CIKM 2004) and Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond" (2009): per-field length-normalised term frequencies are weighted (title above body),
summed, then saturated once with ``k1``. The index is updated incrementally through
``Engine.subscribe`` and checkpointed as derived data with the store's change sequence, so a
reopen replays only the changes since.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import StorageError
from ...records import Hits, Item, Query
from ...store.sqlite import StoredItem
from ..text import stems
from .base import allowed_rows, hits_from_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView

FORMAT_VERSION = 1
FIELDS = ("title", "body")


class BM25Index:
    """Postings per term of per-field term counts; scoring by BM25F."""

    def __init__(self, k1: float = 1.2, b: float = 0.75, weights: tuple[float, float] = (3.0, 1.0)) -> None:
        self.k1, self.b, self.weights = k1, b, weights
        self.postings: dict[str, dict[int, tuple[int, int]]] = {}
        self.lengths: dict[int, tuple[int, int]] = {}
        self._terms: dict[int, tuple[str, ...]] = {}
        self._total = [0, 0]

    def __len__(self) -> int:
        return len(self.lengths)

    def put(self, row: int, title_terms: Sequence[str], body_terms: Sequence[str]) -> None:
        self.remove(row)
        tc, bc = Counter(title_terms), Counter(body_terms)
        for term in tc.keys() | bc.keys():
            self.postings.setdefault(term, {})[row] = (tc.get(term, 0), bc.get(term, 0))
        self.lengths[row] = (len(title_terms), len(body_terms))
        self._terms[row] = tuple(tc.keys() | bc.keys())
        self._total[0] += len(title_terms)
        self._total[1] += len(body_terms)

    def remove(self, row: int) -> None:
        lengths = self.lengths.pop(row, None)
        if lengths is None:
            return
        self._total[0] -= lengths[0]
        self._total[1] -= lengths[1]
        for term in self._terms.pop(row, ()):
            posting = self.postings.get(term, {})
            if posting.pop(row, None) is not None and not posting:
                del self.postings[term]

    def idf(self, term: str) -> float:
        """Robertson–Spärck Jones idf, floored at a small positive value."""
        n, df = len(self.lengths), len(self.postings.get(term, ()))
        return max(math.log(1.0 + (n - df + 0.5) / (df + 0.5)), 1e-6) if df else 0.0

    def known_fraction(self, terms: Sequence[str]) -> float:
        """Share of the terms that occur in the index (a query-understanding feature)."""
        return sum(t in self.postings for t in terms) / len(terms) if terms else 0.0

    def score(self, terms: Sequence[str], allowed: set[int] | None = None) -> dict[int, float]:
        """BM25F score of every document that contains a query term (and is allowed)."""
        n = len(self.lengths)
        if n == 0:
            return {}
        avg = [max(self._total[f] / n, 1e-9) for f in range(2)]
        out: dict[int, float] = {}
        for term in set(terms):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = self.idf(term)
            for row, (tt, tb) in posting.items():
                if allowed is not None and row not in allowed:
                    continue
                lt, lb = self.lengths[row]
                tf = self.weights[0] * tt / (1 - self.b + self.b * lt / avg[0])
                tf += self.weights[1] * tb / (1 - self.b + self.b * lb / avg[1])
                out[row] = out.get(row, 0.0) + idf * tf / (self.k1 + tf)
        return out

    def score_rows(self, terms: Sequence[str], rows: Sequence[int]) -> np.ndarray:
        """BM25F of given rows only (0 for rows without a query term): the ranker's feature."""
        n = len(self.lengths)
        out = np.zeros(len(rows))
        if n == 0:
            return out
        avg = [max(self._total[f] / n, 1e-9) for f in range(2)]
        for term in set(terms):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = self.idf(term)
            for i, row in enumerate(rows):
                counts = posting.get(row)
                if counts is not None:
                    lt, lb = self.lengths[row]
                    tf = self.weights[0] * counts[0] / (1 - self.b + self.b * lt / avg[0])
                    tf += self.weights[1] * counts[1] / (1 - self.b + self.b * lb / avg[1])
                    out[i] += idf * tf / (self.k1 + tf)
        return out

    def to_json(self) -> dict[str, Any]:
        docs: dict[int, list[dict[str, int]]] = {row: [{}, {}] for row in self.lengths}
        for term, posting in self.postings.items():
            for row, (tt, tb) in posting.items():
                if tt:
                    docs[row][0][term] = tt
                if tb:
                    docs[row][1][term] = tb
        return {
            "k1": self.k1,
            "b": self.b,
            "weights": list(self.weights),
            "docs": {str(r): [d[0], d[1], list(self.lengths[r])] for r, d in docs.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BM25Index:
        index = cls(float(data["k1"]), float(data["b"]), (float(data["weights"][0]), float(data["weights"][1])))
        for key, (title, body, lengths) in data["docs"].items():
            row = int(key)
            for term in title.keys() | body.keys():
                index.postings.setdefault(term, {})[row] = (int(title.get(term, 0)), int(body.get(term, 0)))
            index._terms[row] = tuple(title.keys() | body.keys())
            index.lengths[row] = (int(lengths[0]), int(lengths[1]))
            index._total[0] += int(lengths[0])
            index._total[1] += int(lengths[1])
        return index


def item_terms(item: Item) -> tuple[list[str], list[str]]:
    """Stemmed title terms and body terms (attributes are the structured strategy's business)."""
    return stems(item.title), stems(item.text)


class LexicalStrategy:
    """BM25F candidates, plus ``popularity_weight · log(1 + popularity)`` for matching items."""

    name = "lexical"

    def __init__(self, engine: EngineView, *, popularity_weight: float = 0.0, path: Path | None = None) -> None:
        self.engine = engine
        self.popularity_weight = popularity_weight
        self.popularity: dict[str, float] = {}
        self.path = path if path is not None else engine.path / "ltr" / "lexical.json"
        self.index = self._load_or_build()

    # -- derived-data lifecycle ----------------------------------------------------------------
    def _load_or_build(self) -> BM25Index:
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise StorageError(f"{self.path}: unreadable lexical index ({exc}); delete it to rebuild") from exc
            if data.get("format_version") == FORMAT_VERSION:
                index = BM25Index.from_json(data["index"])
                self._catch_up(index, int(data["seq"]))
                return index
        index = BM25Index()
        rows = self.engine.all_rows().tolist()
        for start in range(0, len(rows), 2000):
            for row, stored in self.engine.items_of(rows[start : start + 2000]).items():
                index.put(row, *item_terms(stored.item))
        return index

    def _catch_up(self, index: BM25Index, seq: int) -> None:
        changes = self.engine.changes_since(seq)
        latest: dict[int, str] = {}
        for row, op in changes:
            latest[row] = op
        found = self.engine.items_of([r for r, op in latest.items() if op == "put"])
        for row in latest:
            index.remove(row)
            if row in found:
                index.put(row, *item_terms(found[row].item))

    def save(self) -> None:
        """Checkpoint the index with the store's change sequence (atomic replace)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format_version": FORMAT_VERSION, "seq": self.engine.last_seq(), "index": self.index.to_json()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        for s in stored:
            self.index.put(s.row, *item_terms(s.item))

    def on_delete(self, rows: Sequence[int]) -> None:
        for row in rows:
            self.index.remove(row)

    # -- retrieval -----------------------------------------------------------------------------
    def scores(self, query: Query) -> dict[int, float]:
        """BM25F (+ prior) per matching, allowed row."""
        scores = self.index.score(stems(query.text or ""), allowed_rows(self.engine, query))
        if self.popularity_weight and self.popularity:
            for row in scores:
                pop = self.popularity.get(self.engine.find_id(row) or "", 0.0)
                scores[row] += self.popularity_weight * math.log1p(pop)
        return scores

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        return hits_from_rows(self.engine, top_rows(self.scores(query), depth), self.name)
