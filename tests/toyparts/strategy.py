"""A toy third-party strategy for the learned pipeline, named by dotted path only (never registered):
``tests.toyparts.strategy:ToyStrategy``. It returns the items whose title holds a query word, longest
title first, so a test can tell its hits from any built-in strategy's."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from xmodal.ltr.strategies.registry import Built, StrategyContext, StrategySpec
from xmodal.records import Hits, Query

NAME = "toy-titles"


class ToyStrategy:
    """Built by the registry as ``ToyStrategy(context)``; ``retrieve`` honours the query's filters."""

    name = NAME
    family = "toy"

    def __init__(self, context: StrategyContext) -> None:
        self.view = context.engine

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        words = set((query.text or "").lower().split())
        allowed = self.view.match_rows(query.filters)
        rows = self.view.all_rows() if allowed is None else allowed
        found = []
        for stored in self.view.items_of(rows.tolist()).values():
            title = stored.item.title.lower()
            if words & set(title.split()):
                found.append((len(title), stored.item.id))
        found.sort(key=lambda t: (-t[0], t[1]))
        top = found[:depth]
        return Hits.of([i for _, i in top], [float(n) for n, _ in top], self.name)


class ToyFactory:
    """A factory source (``tests.toyparts.strategy:ToyFactory``): two toy strategies with specs of their own."""

    def build(self, context: StrategyContext) -> Iterator[Built]:
        for suffix in ("a", "b"):
            strategy = ToyStrategy(context)
            strategy.name = f"{NAME}-{suffix}"
            yield Built(StrategySpec(strategy.name, "toy", when=lambda probe: bool(probe.query.text)), strategy)
