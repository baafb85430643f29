"""Exploration: newly added, popular and random items, so feedback reaches items no plan would show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Query
from .base import allowed_rows, hits_from_rows
from .memory import MemoryStrategy
from .structured import QueryUnderstanding

if TYPE_CHECKING:
    from ...engine import Engine


class ExploreStrategy:
    """Round-robin of the newest items, the most popular items and seeded random items.

    When query understanding finds attribute slots, the pool is the items that match them, so
    exploration stays on topic (a query for "fabric" explores fabrics). With a memory index, the
    exploration is query-aware: an item already looked at for this query without a positive action is
    left out of the newest and popular lists, and the random draw takes the items shown least often
    for this query first, so a repeated query walks through its pool instead of re-drawing the same
    items. Scores fall linearly (``1 - i/depth``): the order is a round-robin, not a relevance order, so
    score fusion keeps several explored items near the strategy's weight instead of only the first.
    """

    name = "explore"

    def __init__(
        self,
        engine: Engine,
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
                with self.engine._lock.read():
                    matched = self.engine.attributes.match({**slots, **dict(query.filters)})
                allowed = set() if matched is None else set(matched.tolist())
        rows = np.fromiter(self.engine._ids.keys(), dtype=np.int64) if allowed is None else np.array(sorted(allowed))
        if len(rows) == 0 or depth <= 0:
            return Hits.empty()
        shown = self._shown_unanswered(query.text)
        shown_rows = np.fromiter(shown, dtype=np.int64, count=len(shown))
        fresh = rows[~np.isin(rows, shown_rows)] if shown else rows
        newest = fresh[np.argsort(-fresh, kind="stable")][:depth]  # rows grow with insertion order
        popular = []
        for item_id in sorted(self.popularity, key=lambda i: (-self.popularity[i], i)):
            row = self.engine._rows.get(item_id)
            if row is not None and (allowed is None or row in allowed) and row not in shown:
                popular.append(row)
                if len(popular) >= depth:
                    break
        random = self.rng.permutation(rows)
        if shown:  # the least shown for this query first (never shown: 0), random among equals
            seen = np.isin(random, shown_rows)
            later = random[seen]
            later = later[np.argsort([shown[int(r)] for r in later], kind="stable")]
            random = np.concatenate([random[~seen], later])
        random = random[:depth]
        picked: dict[int, float] = {}
        for rank in range(depth):
            for source in (newest, popular, random):
                if rank < len(source) and int(source[rank]) not in picked and len(picked) < depth:
                    picked[int(source[rank])] = 1.0 - len(picked) / depth
        return hits_from_rows(self.engine, list(picked.items()), self.name)

    def _shown_unanswered(self, text: str | None) -> dict[int, float]:
        """Rows looked at (one expected examination or more) for this normalised query that never got a
        positive action -> expected examinations."""
        if self.memory is None:
            return {}
        out = {}
        for item_id, pair in self.memory.lookup(text).items():
            row = self.engine._rows.get(item_id)
            if row is not None and pair.impressions >= 1.0 and pair.actions <= 0:
                out[row] = pair.impressions
        return out
