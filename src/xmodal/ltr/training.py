"""Training sets for the ranker from logged impressions, and nDCG for judging it.

Each logged impression contributes the items it showed: their features (computed when the query
was served), a graded label (the event's reward, capped) and, for inverse propensity weighting, a
weight of ``1 / propensity(position)`` on clicked items (Joachims, Swaminathan & Schnabel, WSDM 2017);
the unclicked items of a list share its clicks' mean weight, so every (clicked, unclicked) pair of
lambdarank's loss is weighted by its clicked item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LoggedList:
    """One impression for training: features of the shown items (fused order), where each was shown, clicks."""

    X: np.ndarray  # [n_shown, n_features]
    positions: Sequence[int]  # 1-based position at which each row was shown
    labels: Sequence[float]  # observed reward per row (0 = no event)


def training_set(
    lists: Sequence[LoggedList], propensities: np.ndarray | None = None, *, max_weight: float = 10.0
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """Stack lists into (X, y, groups, weights); lists without any event teach lambdarank nothing and are skipped.

    Inverse-propensity weights are clipped at ``max_weight`` (a little bias for much less variance:
    a click at a rarely examined position would otherwise dominate its whole list)."""
    Xs, ys, groups, ws = [], [], [], []
    for lst in lists:
        y = np.minimum(np.asarray(lst.labels, dtype=np.float64), 3.0)
        if y.max(initial=0.0) <= 0:
            continue
        w = np.ones(len(y))
        if propensities is not None:
            pos = np.asarray(lst.positions, dtype=np.int64) - 1
            clipped = np.minimum(1.0 / propensities[np.clip(pos, 0, len(propensities) - 1)], max_weight)
            # lambdarank's loss of a list is over pairs (clicked, not clicked); the pair's IPW weight is that
            # of its clicked item, so an unclicked item takes the mean weight of its list's clicks
            w = np.where(y > 0, clipped, clipped[y > 0].mean())
        Xs.append(lst.X)
        ys.append(np.ceil(y).astype(np.int64))
        groups.append(len(y))
        ws.append(w)
    if not Xs:
        return np.zeros((0, 0)), np.zeros(0), [], np.zeros(0)
    return np.vstack(Xs), np.concatenate(ys), groups, np.concatenate(ws)


def ndcg_at(order: Sequence[str], relevant: set[str] | frozenset[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k (Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", 2002)."""
    gains = [1.0 / np.log2(i + 2) for i, item in enumerate(order[:k]) if item in relevant]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return float(sum(gains) / ideal) if ideal else 0.0
