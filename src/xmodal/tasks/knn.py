"""The k-nearest-neighbour vote (Cover & Hart, "Nearest neighbor pattern classification", IEEE Trans.
Inf. Theory 1967), on cosine similarity of unit vectors, with distance weighting as in Dudani ("The
distance-weighted k-nearest-neighbor rule", IEEE SMC 1976) or scikit-learn's ``weights="distance"``.

A scikit-learn-style estimator: hyperparameters in ``__init__``, ``fit`` returns self, learned state ends
in ``_``. Pure NumPy: the reference for any faster neighbour search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ValidationError

#: How a neighbour's vote is weighted, by name: every neighbour alike, or by 1 / cosine distance.
WEIGHTINGS = ("uniform", "distance")
EPSILON = 1e-6  # a neighbour at distance 0 (the same vector) gets a large but finite weight
BLOCK = 2048  # query rows per similarity block (bounds memory to BLOCK x n floats)


def neighbour_weights(similarities: np.ndarray, weighting: str) -> np.ndarray:
    """Each neighbour's vote from its cosine similarity: 1 (``uniform``) or 1 / (1 - cos + eps) (``distance``)."""
    if weighting == "uniform":
        return np.ones_like(similarities, dtype=np.float64)
    return 1.0 / (1.0 - similarities.astype(np.float64) + EPSILON)


def check_weighting(weighting: str) -> str:
    if weighting not in WEIGHTINGS:
        raise ValidationError("weighting", f"unknown weighting {weighting!r}", f"use one of {', '.join(WEIGHTINGS)}")
    return weighting


class KnnVote:
    """Votes of the ``k`` most similar labelled vectors; a label's confidence is its share of the votes."""

    def __init__(self, k: int = 10, weighting: str = "distance") -> None:
        self.k = k
        self.weighting = weighting

    def fit(self, vectors: np.ndarray, labels: Sequence[str]) -> KnnVote:
        """Keep the labelled vectors (unit rows) and their labels."""
        if len(vectors) != len(labels):
            raise ValidationError("labels", f"{len(labels)} labels for {len(vectors)} vectors", "give one label each")
        if self.k < 1:
            raise ValidationError("k", f"must be at least 1, got {self.k}", "pass k=10 for example")
        check_weighting(self.weighting)
        self.classes_ = np.asarray(sorted(set(labels)))
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        self.codes_ = np.asarray([index[label] for label in labels], dtype=np.int64)
        self.vectors_ = np.asarray(vectors, dtype=np.float32)
        return self

    def kneighbors(self, vectors: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The positions and cosines of each query's ``k`` nearest fitted vectors, most similar first
        (``exclude_self``: the queries are the fitted vectors themselves, each one's own row left out)."""
        k = min(self.k, len(self.vectors_) - (1 if exclude_self else 0))
        if k < 1:
            raise ValidationError("labels", "too few labelled items for a vote", "label at least two items")
        idx_blocks, sim_blocks = [], []
        for start in range(0, len(vectors), BLOCK):
            sims = np.asarray(vectors[start : start + BLOCK], dtype=np.float32) @ self.vectors_.T
            if exclude_self:
                rows = np.arange(len(sims))
                sims[rows, rows + start] = -np.inf
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            idx_blocks.append(np.take_along_axis(top, order, axis=1))
            sim_blocks.append(np.take_along_axis(top_sims, order, axis=1))
        return np.concatenate(idx_blocks), np.concatenate(sim_blocks)

    def predict_proba(self, vectors: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Each query's vote share per class (columns in ``classes_`` order; rows sum to 1)."""
        idx, sims = self.kneighbors(vectors, exclude_self)
        weights = neighbour_weights(sims, self.weighting)
        votes = np.zeros((len(idx), len(self.classes_)), dtype=np.float64)
        np.add.at(votes, (np.arange(len(idx))[:, None], self.codes_[idx]), weights)
        out: np.ndarray = votes / votes.sum(axis=1, keepdims=True)
        return out

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """Each query's winning label (ties: the label that sorts first)."""
        result: np.ndarray = self.classes_[np.argmax(self.predict_proba(vectors), axis=1)]
        return result
