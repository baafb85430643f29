"""Exploration: newly added, popular and random items, so feedback reaches items no plan would show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Query
from .base import allowed_rows, hits_from_rows
from .memory import MemoryStrategy
from .structured import QueryUnderstanding

if TYPE_CHECKING:
    from ...extension import EngineView


class ExploreStrategy:
    """Round-robin of the newest items, the most popular items and seeded random items.

    When query understanding finds attribute slots, the pool is the items that match them, so
    exploration stays on topic (a query for "fabric" explores fabrics). With a memory index, the
    exploration is query-aware: an item looked at for this query (one expected examination or more) is
    left out of the newest and popular lists, and every list, and then the round-robin itself, takes
    the items looked at least for this query first (never shown: none), so a repeated query walks
    through its pool instead of re-drawing the same items. Scores fall linearly
    (``1 - i/depth``): the order is a round-robin, not a relevance order, so score fusion keeps several
    explored items near the strategy's weight instead of only the first.
    """

    name = "explore"

    def __init__(
        self,
        engine: EngineView,
        *,
        seed: int = 0,
        understanding: QueryUnderstanding | None = None,
        memory: MemoryStrategy | None = None,
    ) -> None:
        self.engine = engine
        self.understanding = understanding
        self.memory = memory
        self.rng = np.random.default_rng(seed)
        self.popularity: dict[str, float] = {}

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        allowed = allowed_rows(self.engine, query)
        if self.understanding is not None:
            slots = self.understanding.understand(query.text).filters()
            if slots:
                matched = self.engine.match_rows({**slots, **dict(query.filters)})
                allowed = set() if matched is None else set(matched.tolist())
        rows = self.engine.all_rows() if allowed is None else np.array(sorted(allowed))
        if len(rows) == 0 or depth <= 0:
            return Hits.empty()
        looked = self._looked_at(query.text)
        looked_rows = np.fromiter(looked, dtype=np.int64, count=len(looked))
        shown = {row for row, e in looked.items() if e >= 1.0}
        fresh = rows[~np.isin(rows, np.fromiter(shown, dtype=np.int64, count=len(shown)))] if shown else rows

        def looked_first(order: np.ndarray) -> np.ndarray:
            """``order`` with the rows never shown for this query first, then the least looked at (stable)."""
            if not looked:
                return order
            seen = np.isin(order, looked_rows)
            later = order[seen]
            later = later[np.argsort([looked[int(r)] for r in later], kind="stable")]
            return np.concatenate([order[~seen], later])

        newest = looked_first(fresh[np.argsort(-fresh, kind="stable")])[:depth]  # rows grow with insertion order
        liked: list[int] = []
        for item_id in sorted(self.popularity, key=lambda i: (-self.popularity[i], i)):
            row = self.engine.find_row(item_id)
            if row is not None and (allowed is None or row in allowed) and row not in shown:
                liked.append(row)
                if len(liked) >= depth + len(looked):  # enough for ``depth`` of the least looked at
                    break
        popular = looked_first(np.array(liked, dtype=np.int64))[:depth]
        random = looked_first(self.rng.permutation(rows))[:depth]  # random among equally looked-at rows
        order: dict[int, None] = {}  # the round-robin, in order
        for rank in range(depth):
            for source in (newest, popular, random):
                if rank < len(source) and int(source[rank]) not in order and len(order) < depth:
                    order[int(source[rank])] = None
        ranked = sorted(order, key=lambda r: looked.get(r, 0.0))  # stable: round-robin among equally looked-at
        picked = {row: 1.0 - i / depth for i, row in enumerate(ranked)}
        return hits_from_rows(self.engine, list(picked.items()), self.name)

    def _looked_at(self, text: str | None) -> dict[int, float]:
        """Rows shown for this normalised query -> their expected examinations (position-weighted
        impressions). Items acted on count too: the memory index serves those that are answers, and
        exploration is for the items that have had the least attention."""
        if self.memory is None:
            return {}
        out = {}
        for item_id, pair in self.memory.lookup(text).items():
            row = self.engine.find_row(item_id)
            if row is not None and pair.impressions > 0:
                out[row] = pair.impressions
        return out
