"""The same query with no new feedback returns the same top hits.

Every logged search changes what the learned pipeline knows (the policy observes which strategies supplied
the items shown, the memory index counts the impressions), so without care a repeated query gets another
plan, or another order, on every call: the results a user sees flicker although nobody acted on them.
:class:`Repeats` remembers, per query (:func:`query_key`: its normalised text, its media, filters and
target; not the user), the relevance strategies of its last plan and its top hits (the positions above
exploration's, :mod:`xmodal.ltr.exploration`), with the *state* they were chosen in: the feedback on this
query (its events) and the catalog's version. A repeat in the same state gets the same relevance
strategies and the same top hits first (:func:`pin`); an event on the query, or a change to the catalog,
lets them change. The memo lives in the process (bounded, least recently used first out).

Skips are negative evidence: when new feedback re-plans a query whose searches keep failing
(:func:`context.unanswered`), the items users looked at for it and passed over (:func:`passed_over`) go
below the ones not yet looked at (:func:`demote`), so its top hits change to fresh items at each feedback
event. Without an event, a failing query's top hits turn over the same way (:func:`turns_over`) once users
have passed over every one of them, and after such a turnover only when the new ones were also served
:data:`TURNOVER` times: 20 repeats with no feedback change the top 3 at most once (issue 19's bound), while
the answer of a query that keeps failing gets the top positions' looks, not only exploration's below them.
An answered query keeps its top hits until new feedback comes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..records import Query
from .fusion import FusedHit
from .memory_state import PairStats
from .text import normalize_query

MAX_QUERIES = 50_000
#: expected examinations without an action after which an item counts as passed over for a query:
#: a user who wants an item and looks at it acts on it most of the time, so three looks without an action
#: are evidence against it (one look is not: exploration's own "shown" mark, :mod:`.strategies.explore`)
PASSED_LOOKED = 3.0
#: searches a failing query's top hits from a turnover are kept before they may turn over again without an
#: event: the same query repeated 20 times with no feedback changes its top 3 at most once (issue 19's bound)
TURNOVER = 20


@dataclass(frozen=True, slots=True)
class Shown:
    """What a query got in one state: ``order`` (its relevance strategies, in plan order) and ``top`` (ids)."""

    state: tuple[float, int]  # (the query's feedback, the catalog's version)
    order: tuple[str, ...]
    top: tuple[str, ...]
    served: int = 1  # searches that got this top in this state (the first included)
    turned: bool = False  # this top came from a turnover without an event (:func:`turns_over`)


def query_key(query: Query, vector: np.ndarray | None) -> str:
    """What makes two searches the same query: normalised text, media (by the query vector), filters, target."""
    media = ""
    if (query.image is not None or query.media) and vector is not None:
        media = hashlib.blake2b(np.ascontiguousarray(vector).tobytes(), digest_size=16).hexdigest()
    filters = query.filters
    where = "{}" if isinstance(filters, dict) and not filters else json.dumps(filters, sort_keys=True, default=str)
    return "\x1f".join((normalize_query(query.text), media, where, str(query.target)))


class Repeats:
    """A bounded, thread-safe memo: query key -> :class:`Shown`."""

    def __init__(self, size: int = MAX_QUERIES) -> None:
        self.size = size
        self._memo: OrderedDict[str, Shown] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, state: tuple[float, int]) -> Shown | None:
        """What the query got last, if it was in the same ``state``."""
        with self._lock:
            shown = self._memo.get(key)
            if shown is None or shown.state != state:
                return None
            self._memo.move_to_end(key)
            return shown

    def put(self, key: str, shown: Shown) -> None:
        with self._lock:
            self._memo[key] = shown
            self._memo.move_to_end(key)
            while len(self._memo) > self.size:
                self._memo.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._memo.clear()


def passed_over(pairs: Mapping[str, PairStats], looked: float = PASSED_LOOKED) -> frozenset[str]:
    """The items users passed over for a query (``pairs``: the memory index's statistics of the query's
    items): looked at, at least ``looked`` expected examinations (position-weighted impressions, so an item
    shown at position 1 three times counts 3, at position 3 once counts 1/3), and never acted on. An item
    acted on even once is evidence for, not against (a query's answer is often clicked once in several looks
    before it becomes credible). Evidence, not chance: the same statistics give the same set."""
    return frozenset(i for i, p in pairs.items() if p.impressions >= looked and p.actions <= 0)


def may_turn(shown: Shown) -> bool:
    """Whether a remembered top may turn over at all: it has items and, when it came from a turnover itself,
    it was served :data:`TURNOVER` times (the first turnover in a state follows the event, or the first
    search, that began it)."""
    return bool(shown.top) and (not shown.turned or shown.served >= TURNOVER)


def turns_over(shown: Shown, passed: frozenset[str]) -> bool:
    """Whether a failing query's remembered top turns over without an event: it :func:`may_turn`, and every
    item of it was passed over (:func:`passed_over`)."""
    return may_turn(shown) and set(shown.top) <= passed


def demote(ranked: Sequence[FusedHit], passed: frozenset[str]) -> list[FusedHit]:
    """``ranked`` with the hits ``passed`` names after the others, each part in its order."""
    if not passed:
        return list(ranked)
    return [h for h in ranked if h.id not in passed] + [h for h in ranked if h.id in passed]


def pin(ranked: Sequence[FusedHit], top: Sequence[str]) -> list[FusedHit]:
    """``ranked`` with the hits ``top`` names first, in that order (those it holds); the rest keep their order."""
    if not top:
        return list(ranked)
    by_id = {h.id: h for h in ranked}
    first = [by_id[i] for i in dict.fromkeys(top) if i in by_id]
    chosen = {h.id for h in first}
    return first + [h for h in ranked if h.id not in chosen]
