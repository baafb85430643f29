"""The memory index: query → item feedback statistics over normalised queries.

For every normalised query it keeps, per item, position-weighted impressions (expected
examinations, see :func:`examination`) and weighted positive actions, and
scores an item by the smoothed rate ``(actions + a·prior) / (impressions + a)`` (a Beta-style
prior, so a cold pair starts at its prior and real statistics take over as they accumulate).
The cold start is a set of *predicted queries* generated from each item: its title, key phrases of
its title (leading and trailing word pairs) and attribute-value + title-head combinations; these
carry a prior of :data:`PREDICTED_PRIOR` until feedback replaces them.

The priors and the statistics of the feedback log live on disk (:mod:`xmodal.ltr.memory_state`,
``ltr/memory.sqlite``), read one query at a time: a new process does not re-derive them from every item.
Statistics added directly (:meth:`MemoryStrategy.add_impression` / :meth:`~MemoryStrategy.add_action`,
the simulator's) stay in this process, in :attr:`MemoryStrategy.stats` and ``history_``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Query
from ...store.sqlite import StoredItem
from ..memory_state import PREDICTED_PRIOR, PRIOR_STRENGTH, MemoryState, PairStats, examination, predicted_queries
from ..text import normalize_query
from .base import allowed_rows, hits_from_rows, top_rows

if TYPE_CHECKING:
    from ...extension import EngineView
    from ...feedback.base import FeedbackStore
    from ...feedback.log import Event, Impression

__all__ = [
    "PREDICTED_PRIOR",
    "PRIOR_STRENGTH",
    "MemoryStrategy",
    "PairStats",
    "examination",
    "predicted_queries",
]


@dataclass(frozen=True, slots=True)
class MemoryFacts:
    """What the memory index holds for one normalised query (:meth:`MemoryStrategy.facts`): per item id its
    statistics (read them, never change them), and the query's history (searches logged, positive actions)."""

    pairs: Mapping[str, PairStats]
    history: tuple[int, float]

    def evidence(self) -> int:
        """How many items have positive evidence (a prior or an action)."""
        return sum(1 for p in self.pairs.values() if p.actions > 0 or p.prior > 0)

    def answer_rate(self) -> float:
        """The best smoothed action rate among the items acted on (0: none)."""
        return max((p.score() for p in self.pairs.values() if p.actions > 0), default=0.0)

    def answers(self, least: float) -> tuple[str, ...]:
        """The items acted on whose smoothed action rate is at least ``least``, best first (ties by id)."""
        rates = {i: p.score() for i, p in self.pairs.items() if p.actions > 0 and p.score() >= least}
        return tuple(sorted(rates, key=lambda i: (-rates[i], i)))


class MemoryStrategy:
    """Items seen (or predicted) to satisfy the same normalised query, by smoothed action rate.

    ``folder`` keeps the state on disk (the pipeline's ``ltr/``); without one it is built in memory.
    ``log`` (the feedback log) supplies the statistics; ``cold_start=False`` keeps no predicted priors
    (and its state in memory only).
    """

    name = "memory"

    def __init__(
        self,
        engine: EngineView,
        log: FeedbackStore | None = None,
        *,
        cold_start: bool = True,
        folder: Path | None = None,
    ) -> None:
        self.engine = engine
        self.cold_start = cold_start
        self.log = log
        self.stats: dict[str, dict[str, PairStats]] = {}  # added in this process (the simulator's), not logged
        self.history_: dict[str, list[float]] = {}  # normalised query -> [searches, positive actions], likewise
        self.state = MemoryState(engine, folder if cold_start else None, priors=cold_start, log=log)

    # -- updates -------------------------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self.state.on_put(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.state.on_delete(rows)

    def on_impression(self, impression: Impression) -> None:
        if self.log is not None:
            self.state.noted_feedback()  # the log has it: read from its tail until folded
        else:
            self.add_impression(impression.normalized, impression.shown)

    def on_event(self, event: Event, impression: Impression) -> None:
        if self.log is not None:
            self.state.noted_feedback()
        else:
            self.add_action(impression.normalized, event.item_id, event.reward)

    def add_impression(self, key: str, shown: Iterable[str]) -> None:
        """Count an impression not in the log (kept in this process only)."""
        if key:
            self.history_.setdefault(key, [0.0, 0.0])[0] += 1.0
            pairs = self.stats.setdefault(key, {})
            for position, item_id in enumerate(shown, start=1):
                pairs.setdefault(item_id, PairStats()).impressions += examination(position)

    def add_action(self, key: str, item_id: str, reward: float) -> None:
        """Count a positive action not in the log (kept in this process only)."""
        if key:
            capped = min(reward, 1.0)
            self.stats.setdefault(key, {}).setdefault(item_id, PairStats()).actions += capped
            self.history_.setdefault(key, [0.0, 0.0])[1] += capped

    def checkpoint(self) -> None:
        """Write the state's pending changes (nothing when there are none)."""
        self.state.checkpoint()

    def close(self) -> None:
        self.state.close()

    # -- retrieval -----------------------------------------------------------------------------
    def lookup(self, text: str | None) -> Mapping[str, PairStats]:
        """Per item id, the statistics held for this normalised query (read it, never change it)."""
        key = normalize_query(text)
        return self._merged(key, self.state.recall(key).pairs)

    def facts(self, text: str | None) -> MemoryFacts:
        """What the memory index holds for this normalised query, read once (one :meth:`MemoryState.recall`):
        its items' statistics (:meth:`lookup`'s) and its history (:meth:`history`'s)."""
        key = normalize_query(text)
        found = self.state.recall(key)
        searches, actions = self.history_.get(key, (0.0, 0.0))
        return MemoryFacts(
            self._merged(key, found.pairs), (int(found.searches + searches), float(found.actions + actions))
        )

    def _merged(self, key: str, found: Mapping[str, PairStats]) -> Mapping[str, PairStats]:
        extra = self.stats.get(key)
        if not extra:
            return found
        merged = dict(found)
        for item_id, pair in extra.items():
            have = merged.get(item_id)
            merged[item_id] = (
                pair
                if have is None
                else PairStats(have.impressions + pair.impressions, have.actions + pair.actions, have.prior)
            )
        return merged

    def evidence(self, text: str | None) -> int:
        """How many items have positive evidence (a prior or an action) for this query."""
        return self.facts(text).evidence()

    def answer_rate(self, text: str | None) -> float:
        """The best smoothed action rate among the items acted on for this normalised query (0: none): how
        credible the best answer users found is (one click in many showings at the top is not an answer)."""
        return self.facts(text).answer_rate()

    def answers(self, text: str | None, least: float) -> tuple[str, ...]:
        """The items acted on for this normalised query whose smoothed action rate is at least ``least``,
        best first (ties by id): answers users found, the evidence that may take the top positions."""
        return self.facts(text).answers(least)

    def history(self, text: str | None) -> tuple[int, float]:
        """How often this normalised query was searched (impressions logged) and its positive actions."""
        return self.facts(text).history

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        allowed = allowed_rows(self.engine, query)
        scores: dict[int, float] = {}
        for item_id, pair in self.lookup(query.text).items():
            row = self.engine.find_row(item_id)
            if row is not None and (allowed is None or row in allowed) and (pair.actions > 0 or pair.prior > 0):
                scores[row] = pair.score()
        return hits_from_rows(self.engine, top_rows(scores, depth), self.name)
