"""The score of a fused hit (the learned and uniform modes), on a stated scale: [0, 1], non-increasing.

A hit's *relevance* is its fused score divided by the best fused score possible, that of an item first in
every run fused (see :func:`relevance`):

- ``convex-minmax`` (the default fusion): the weighted mean, over the runs fused, of the item's min-max
  normalised score in each (0 in a run that did not return it; with ``LTRConfig.complete`` the lexical run is
  scaled from half its last hit's BM25F and scores the other runs' candidates too: :mod:`.completion`). 1:
  first in every run; 0: last in, or absent from, every run (and, completed, holding no query term).
- ``rrf``: ``Σ w / (k + rank)`` over ``Σ w / (k + 1)``.
- ``convex-zscore``: the logistic of the weighted mean z-score (0.5: an average candidate).

The order shown is the ranker's when one is trained, with exploration's items placed in it, so the
relevance of consecutive hits can rise. The score is then the non-increasing sequence closest to the
relevances in the order shown (least squares): isotonic regression by pool adjacent violators (M. Ayer,
H. D. Brunk, G. M. Ewing, W. T. Reid and E. Silverman, "An empirical distribution function for sampling
with incomplete information", Ann. Math. Statist. 1955). Each hit's score is at most the one above it, and
hits shown out of relevance order share the mean relevance of their block. Each strategy's raw score stays
in ``explain`` (``hits[].sources``), with the relevance and the ranker's raw score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .fusion import RRF_K, FusedHit


def relevance(
    fusion: str, total: float, weights: Mapping[str, float], families: Mapping[str, str] | None = None
) -> float:
    """A fused score on [0, 1]: ``total`` (from fusion method ``fusion`` over runs with ``weights``) relative
    to the score of an item first in every run (``families``: under a convex fusion, runs of one family count
    once, by the largest weight among them, as :func:`.fusion.convex` counts an item's best view)."""
    weight = _best_total(fusion, weights, families)
    if weight <= 0:
        return 0.0
    if fusion == "rrf":
        value = total * (RRF_K + 1.0) / weight
    elif fusion == "convex-zscore":
        value = 1.0 / (1.0 + math.exp(-total / weight))
    else:
        value = total / weight
    return min(max(value, 0.0), 1.0)


def _best_total(fusion: str, weights: Mapping[str, float], families: Mapping[str, str] | None) -> float:
    """The sum of the positive weights, a family's runs counted once (by their largest) under a convex fusion."""
    if not families or fusion == "rrf":
        return sum(w for w in weights.values() if w > 0)
    alone = sum(w for name, w in weights.items() if w > 0 and name not in families)
    tops: dict[str, float] = {}
    for name, w in weights.items():
        if w > 0 and name in families:
            tops[families[name]] = max(tops.get(families[name], 0.0), w)
    return alone + sum(tops.values())


def non_increasing(values: Sequence[float]) -> np.ndarray:
    """The least-squares non-increasing fit of ``values`` (pool adjacent violators, Ayer et al. 1955)."""
    blocks: list[list[float]] = []  # [sum, count] per pooled block
    for value in values:
        blocks.append([float(value), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return np.array([s / n for s, n in blocks for _ in range(int(n))], dtype=np.float64)


def shown_scores(
    shown: Sequence[FusedHit],
    fusion: str,
    weights: Mapping[str, float],
    families: Mapping[str, str] | None = None,
) -> list[float]:
    """The score of each hit of a list in the order shown: its relevance, made non-increasing."""
    weight = _best_total(fusion, weights, families)
    fitted = non_increasing([relevance(fusion, h.score, {"": weight}) for h in shown])
    return [round(float(v), 6) for v in fitted]


SCORE_MEANING = (
    "relevance in [0, 1]: the fused score over that of an item first in every run fused, made non-increasing "
    "down the list (isotonic regression); each strategy's raw score is in hits[].sources"
)
