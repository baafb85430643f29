"""Bootstrap confidence intervals of mean per-query metrics, paired across the systems compared.

The queries of a group are resampled with replacement (B. Efron and R. Tibshirani, *An Introduction to
the Bootstrap*, 1993, ch. 13: the percentile interval); every system is scored on the *same* resamples, so
the interval of a difference between two systems is the paired one (as in T. Sakai, "Evaluating
evaluation metrics based on the bootstrap", SIGIR 2006). A resample is drawn as the count of times each
query is picked, so a group of any size costs ``resamples × queries`` numbers, whatever the systems.
The generator is NumPy's PCG64 seeded by the seed and a key, so a group's intervals do not depend on
which other groups are evaluated.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean and its bootstrap interval."""

    mean: float
    low: float
    high: float

    def to_dict(self, digits: int = 4) -> dict[str, float]:
        return {"mean": round(self.mean, digits), "low": round(self.low, digits), "high": round(self.high, digits)}


def resample_counts(n: int, resamples: int = RESAMPLES, *, seed: int = 0, key: str = "") -> np.ndarray:
    """``[resamples, n]`` counts: how often each of ``n`` queries is drawn in each resample (rows sum to n)."""
    if n <= 0:
        return np.zeros((resamples, 0), dtype=np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))
    draws = rng.integers(0, n, size=(resamples, n)) + np.arange(resamples)[:, None] * n
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def intervals(values: np.ndarray, counts: np.ndarray, confidence: float = CONFIDENCE) -> list[Interval]:
    """The mean of each row of ``values`` (``[systems, n]``) with its percentile interval over the resamples
    ``counts`` (from :func:`resample_counts`); rows that are differences give paired intervals."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n = values.shape[1]
    if n == 0:
        return [Interval(0.0, 0.0, 0.0) for _ in range(values.shape[0])]
    means = values.mean(axis=1)
    boot = values @ counts.T / n  # [systems, resamples]
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1.0 - tail], axis=1)
    return [Interval(float(m), float(lo), float(hi)) for m, lo, hi in zip(means, low, high, strict=True)]
