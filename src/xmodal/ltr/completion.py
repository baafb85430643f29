"""Score completion: the fused candidates of the other runs scored by each run's strategy that can score them.

A run returns its top ``depth`` items only, so a candidate another run found is, to it, absent: under a convex
fusion it scores 0 from that run, whatever the strategy would have said of it. Lexical search can say: BM25F of
the candidate's stored terms (a handful of rows read by key), 0 for one that holds no query term. Completed,
a dense-only hit that matches some of the query's words gets that credit, on the lexical run's scale
(:func:`.fusion.convex`'s ``completed``), and the lexical run's last hits are no longer scored like items
that match nothing.

Only strategies whose scores have a zero that means "no evidence" complete (:class:`ScoringStrategy`: the
lexical one). Cosine similarity has no such zero: completing the dense run's scores of lexical-only hits was
measured and made the descriptive query kinds worse (docs/benchmarks.md, "Score completion"), so the dense
strategies do not score items for completion, nor do memory, structured, generative or exploration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..records import Hits, Query
from .strategies.base import ScoringStrategy, Strategy


def complete(
    strategies: Mapping[str, Strategy],
    runs: Mapping[str, Hits],
    query: Query,
    vector: np.ndarray | None,
    find_row: Callable[[str], int | None],
) -> dict[str, dict[str, float]]:
    """Per non-empty run whose strategy can score items (:class:`ScoringStrategy`), the raw score it gives each
    candidate of the other runs that it did not return itself (an empty mapping when there is none: the run is
    still normalised as a completed one). ``find_row``: an item id's row (None: deleted, left out). A strategy
    that cannot score this query (``score_rows`` returns None) is left out."""
    out: dict[str, dict[str, float]] = {}
    pool: dict[str, int] | None = None
    for name in sorted(runs):
        hits, strategy = runs[name], strategies.get(name)
        if len(hits) == 0 or not isinstance(strategy, ScoringStrategy):
            continue
        if pool is None:
            pool = _pool(runs, find_row)
        have = set(hits.ids.tolist())
        missing = [i for i in pool if i not in have]
        scores = strategy.score_rows(query, [pool[i] for i in missing], vector=vector) if missing else np.zeros(0)
        if scores is not None:
            out[name] = {i: float(s) for i, s in zip(missing, np.asarray(scores).tolist(), strict=True)}
    return out


def _pool(runs: Mapping[str, Hits], find_row: Callable[[str], int | None]) -> dict[str, int]:
    """Every candidate of the runs (first seen first) with its row; deleted ones left out."""
    pool: dict[str, int] = {}
    for hits in runs.values():
        for item_id in hits.ids.tolist():
            if item_id not in pool:
                row = find_row(item_id)
                if row is not None:
                    pool[item_id] = row
    return pool
