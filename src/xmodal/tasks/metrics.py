"""Scores of a labelling against the truth, and stratified folds: small pure NumPy functions.

Macro-F1 is the unweighted mean of each class's F1 (van Rijsbergen's F-measure, 1979), so a rare class
counts as much as a common one; the adjusted Rand index (Hubert & Arabie, 1985) and normalised mutual
information (Strehl & Ghosh, 2002) compare clusterings and come from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def f1_per_class(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Each true class's F1 (0 where it was never predicted right)."""
    t = np.asarray(truth)
    p = np.asarray(predicted)
    out: dict[str, float] = {}
    for label in sorted(set(t.tolist())):
        tp = float(np.sum((t == label) & (p == label)))
        fp = float(np.sum((t != label) & (p == label)))
        fn = float(np.sum((t == label) & (p != label)))
        out[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """The mean over the true classes of their F1."""
    scores = f1_per_class(truth, predicted)
    return float(np.mean(list(scores.values()))) if scores else 0.0


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold number (0..folds-1) per position, each class spread evenly over the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    fold_of = np.empty(len(labels_arr), dtype=np.int64)
    offset = 0
    for label in sorted(set(labels_arr.tolist())):
        members = rng.permutation(np.flatnonzero(labels_arr == label))
        fold_of[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # the next class starts where this one stopped: folds stay even in size
    return fold_of


def clustering_scores(truth: Sequence[str], assigned: Sequence[int]) -> dict[str, float]:
    """Adjusted Rand index and NMI of a clustering against true labels (scikit-learn's)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ari": float(adjusted_rand_score(list(truth), list(assigned))),
        "nmi": float(normalized_mutual_info_score(list(truth), list(assigned))),
    }
