"""The memory index: query → item feedback statistics over normalised queries.

For every normalised query it keeps, per item, position-weighted impressions (expected
examinations, see :func:`examination`) and weighted positive actions, and
scores an item by the smoothed rate ``(actions + a·prior) / (impressions + a)`` (a Beta-style
prior, so a cold pair starts at its prior and real statistics take over as they accumulate).
The cold start is a set of *predicted queries* generated from each item: its title, key phrases of
its title (leading and trailing word pairs) and attribute-value + title-head combinations; these
carry a prior of :data:`PREDICTED_PRIOR` until feedback replaces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Item, Query
from ...store.sqlite import StoredItem
from ..text import normalize_query, tokens
from .base import allowed_rows, hits_from_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView
    from ...feedback.log import Event, FeedbackLog, Impression

PREDICTED_PRIOR = 0.5
PRIOR_STRENGTH = 2.0


def examination(position: int) -> float:
    """The chance that a user looks at a result at ``position`` (1-based): the usual 1/p model, so an
    impression low on the page counts for less than one at the top (rates become clicks over expected
    examinations, which corrects the rate of items usually shown low)."""
    return 1.0 / max(position, 1)


@dataclass(slots=True)
class PairStats:
    """Statistics of one (normalised query, item) pair."""

    impressions: float = 0.0
    actions: float = 0.0
    prior: float = 0.0

    def score(self, strength: float = PRIOR_STRENGTH) -> float:
        return (self.actions + strength * self.prior) / (self.impressions + strength)


def predicted_queries(item: Item) -> list[str]:
    """Queries a user might type to find ``item``: title, title phrases, its facets, facet + last title word."""
    words = tokens(item.title)
    out = [item.title] if words else []
    if len(words) > 2:
        out += [" ".join(words[:2]), " ".join(words[-2:])]
    head = words[-1] if words else ""
    values = [v for v in item.attributes.values() if isinstance(v, str) and len(v) <= 40]
    if len(values) > 1:
        out.append(" ".join(values))  # all facets together: "red leather boots"
    for value in item.attributes.values():
        if isinstance(value, str) and head and len(value) <= 40:
            out.append(f"{value} {head}")
    return out


class MemoryStrategy:
    """Items seen (or predicted) to satisfy the same normalised query, by smoothed action rate."""

    name = "memory"

    def __init__(self, engine: EngineView, log: FeedbackLog | None = None, *, cold_start: bool = True) -> None:
        self.engine = engine
        self.cold_start = cold_start
        self.stats: dict[str, dict[str, PairStats]] = {}
        self.history_: dict[str, list[float]] = {}  # normalised query -> [searches, positive actions]
        if cold_start:
            self._predict(self._all_items())
        if log is not None:
            for impression in log.impressions():
                self.on_impression(impression)
            for event in log.events():
                self.add_action(log.impression(event.query_id).normalized, event.item_id, event.reward)

    def _all_items(self) -> Iterable[Item]:
        rows = self.engine.all_rows().tolist()
        for start in range(0, len(rows), 2000):
            yield from (s.item for s in self.engine.items_of(rows[start : start + 2000]).values())

    def _predict(self, items: Iterable[Item]) -> None:
        for item in items:
            for text in predicted_queries(item):
                key = normalize_query(text)
                if key:
                    pair = self.stats.setdefault(key, {}).setdefault(item.id, PairStats())
                    pair.prior = PREDICTED_PRIOR

    # -- updates -------------------------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        if self.cold_start:
            self._predict(s.item for s in stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        pass  # deleted ids are skipped at retrieval; their statistics age out harmlessly

    def on_impression(self, impression: Impression) -> None:
        self.add_impression(impression.normalized, impression.shown)

    def on_event(self, event: Event, impression: Impression) -> None:
        self.add_action(impression.normalized, event.item_id, event.reward)

    def add_impression(self, key: str, shown: Iterable[str]) -> None:
        if key:
            self.history_.setdefault(key, [0.0, 0.0])[0] += 1.0
            pairs = self.stats.setdefault(key, {})
            for position, item_id in enumerate(shown, start=1):
                pairs.setdefault(item_id, PairStats()).impressions += examination(position)

    def add_action(self, key: str, item_id: str, reward: float) -> None:
        if key:
            capped = min(reward, 1.0)
            self.stats.setdefault(key, {}).setdefault(item_id, PairStats()).actions += capped
            self.history_.setdefault(key, [0.0, 0.0])[1] += capped

    # -- retrieval -----------------------------------------------------------------------------
    def lookup(self, text: str | None) -> dict[str, PairStats]:
        return self.stats.get(normalize_query(text), {})

    def evidence(self, text: str | None) -> int:
        """How many items have positive evidence (a prior or an action) for this query."""
        return sum(1 for p in self.lookup(text).values() if p.actions > 0 or p.prior > 0)

    def answer_rate(self, text: str | None) -> float:
        """The best smoothed action rate among the items acted on for this normalised query (0: none): how
        credible the best answer users found is (one click in many showings at the top is not an answer)."""
        return max((p.score() for p in self.lookup(text).values() if p.actions > 0), default=0.0)

    def history(self, text: str | None) -> tuple[int, float]:
        """How often this normalised query was searched (impressions logged) and its positive actions."""
        searches, actions = self.history_.get(normalize_query(text), (0.0, 0.0))
        return int(searches), float(actions)

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        allowed = allowed_rows(self.engine, query)
        scores: dict[int, float] = {}
        for item_id, pair in self.lookup(query.text).items():
            row = self.engine.find_row(item_id)
            if row is not None and (allowed is None or row in allowed) and (pair.actions > 0 or pair.prior > 0):
                scores[row] = pair.score()
        return hits_from_rows(self.engine, top_rows(scores, depth), self.name)
