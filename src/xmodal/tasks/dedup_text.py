"""Near-duplicate text pairs: MinHash LSH candidates kept by estimated Jaccard similarity, the threshold
calibrated on edited copies of the collection's own texts (:mod:`.calibrate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibrate import Threshold, best_threshold, text_variants
from .terms import words
from .textsig import candidate_pairs, jaccard, minhashes

MIN_WORDS = 4  # shorter texts (a one-word title) match by accident: left out of text duplicates
DEFAULT = 0.7
MIN_CALIBRATION = 8
NEGATIVE_LSH = 0.2  # how similar another text must be to be a calibration negative's candidate
CANDIDATE_MARGIN = 0.15  # the LSH looks this far below the threshold, so pairs near it are not missed


def usable(texts: Sequence[str]) -> list[int]:
    """Positions of the texts with enough words to compare."""
    return [i for i, text in enumerate(texts) if len(words(text)) >= MIN_WORDS]


def calibrate(texts: Sequence[str], signatures: Sequence[Any], sample: int, seed: int) -> Threshold:
    """The Jaccard threshold: sampled texts against their edited copies, and against their nearest other text."""
    n = len(texts)
    if n < MIN_CALIBRATION or sample < 1:
        return Threshold("jaccard", DEFAULT, True, "default")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(n, size=min(n, sample), replace=False).tolist())
    positives: list[float] = []
    for j in chosen:
        copies = minhashes(text_variants(texts[j], rng))
        positives += [jaccard(signatures[j], copy) for copy in copies]
    nearest = dict.fromkeys(chosen, 0.0)
    for a, b in candidate_pairs(signatures, NEGATIVE_LSH):
        for own, other in ((a, b), (b, a)):
            if own in nearest:
                nearest[own] = max(nearest[own], jaccard(signatures[own], signatures[other]))
    return best_threshold("jaccard", positives, list(nearest.values()))


def text_pairs(signatures: Sequence[Any], threshold: Threshold) -> list[tuple[int, int, float]]:
    """Pairs (positions) whose estimated Jaccard similarity passes ``threshold``."""
    out = []
    for a, b in sorted(candidate_pairs(signatures, threshold.value - CANDIDATE_MARGIN)):
        score = jaccard(signatures[a], signatures[b])
        if threshold.passes(score):
            out.append((a, b, score))
    return out
