"""Exploration that users do not notice: which calls may explore, how often, and where explored items go.

- **Which calls** (:func:`eligible`): a search explores only when its impression is logged (feedback can
  come back) and, by default, when it names a ``user``; ``calls="logged"`` lets anonymous logged searches
  explore too, ``calls="all"`` every search (an offline simulation).
- **How often** (:class:`ExploreBudget`): at most ``budget`` of the eligible searches a process serves
  explore (a deployment's setting; 0 turns exploration off).
- **Where** (:func:`place`): explored items never go above position ``top`` (1-based, default 4) unless a
  relevance strategy put them there (evidence): the positions above it are the relevance order's, and
  the same query with no new feedback keeps them (:mod:`xmodal.ltr.repeats`). From ``top`` on, an
  explored item takes every position (exploration leads the plan: a query whose searches keep failing)
  or every second one (the exploration floor).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ValidationError
from ..records import Query
from .fusion import FusedHit

CALLS = ("identified", "logged", "all")


@dataclass(frozen=True, slots=True)
class ExploreSettings:
    """A deployment's exploration settings (see the module's docstring)."""

    budget: float = 0.2  # the share of eligible searches that may explore
    calls: str = "identified"  # which calls may explore: "identified", "logged" or "all"
    top: int = 4  # the best position (1-based) an explored item may take without evidence

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, (int, float)) or not 0 <= self.budget <= 1:
            raise ValidationError(
                "exploration.budget", f"must be a share from 0 to 1, got {self.budget!r}", "use e.g. 0.1"
            )
        if self.calls not in CALLS:
            raise ValidationError(
                "exploration.calls", f"unknown choice {self.calls!r}", f"use one of {', '.join(CALLS)}"
            )
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1:
            raise ValidationError("exploration.top", f"must be a position from 1 on, got {self.top!r}", "use e.g. 4")


def eligible(query: Query, calls: str) -> bool:
    """Whether a search may explore at all: ``all``; ``logged``; or ``identified`` (logged, naming a user)."""
    if calls == "all":
        return True
    return query.logged and (calls == "logged" or bool(query.user))


class ExploreBudget:
    """Counts the eligible searches and lets at most ``⌈share × searches⌉`` of them explore (thread-safe)."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.searches = 0
        self.explored = 0
        self._lock = threading.Lock()

    def admit(self, wants: bool) -> bool:
        """Count one eligible search; True when it ``wants`` to explore and the budget has room for it."""
        with self._lock:
            self.searches += 1
            if wants and self.explored < math.ceil(self.share * self.searches - 1e-9):
                self.explored += 1
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self.searches = self.explored = 0


def place(
    ranked: Sequence[FusedHit], explored: Sequence[FusedHit], *, top: int, every: int, limit: int | None = None
) -> list[FusedHit]:
    """``ranked`` (the relevance order) with the ``explored`` items placed at position ``top`` (1-based) and
    every ``every``-th position after it, in their order. An explored item the relevance order holds keeps
    the better of its two places, with the sources of both.
    Explored items come earlier than ``top`` only when the relevance order runs out. At most ``limit`` hits
    (None: all)."""
    if not explored:  # the relevance order alone (each id once), without the merging below
        return _first_distinct(ranked, limit)
    sources = {h.id: h for h in ranked}
    also = {h.id: h.sources for h in explored}
    out: list[FusedHit] = []
    placed: set[str] = set()
    rel, exp = list(ranked), list(explored)
    i = j = 0
    while (i < len(rel) or j < len(exp)) and (limit is None or len(out) < limit):
        position = len(out) + 1
        slot = position >= top and (position - top) % every == 0
        while j < len(exp) and exp[j].id in placed:
            j += 1
        if j < len(exp) and (slot or i >= len(rel)):
            hit = exp[j]
            known = sources.get(hit.id)
            if known is not None:  # found by a relevance strategy too: both say why it is here
                hit = FusedHit(hit.id, known.score, {**known.sources, **hit.sources}, known.ranker)
            out.append(hit)
            placed.add(hit.id)
            j += 1
            continue
        while i < len(rel) and rel[i].id in placed:
            i += 1
        if i < len(rel):
            hit = rel[i]
            if hit.id in also:
                hit = FusedHit(hit.id, hit.score, {**hit.sources, **also[hit.id]}, hit.ranker)
            out.append(hit)
            placed.add(hit.id)
            i += 1
    return out


def _first_distinct(ranked: Sequence[FusedHit], limit: int | None) -> list[FusedHit]:
    out: list[FusedHit] = []
    seen: set[str] = set()
    for hit in ranked:
        if limit is not None and len(out) >= limit:
            break
        if hit.id not in seen:
            seen.add(hit.id)
            out.append(hit)
    return out
