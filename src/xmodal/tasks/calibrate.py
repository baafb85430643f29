"""Thresholds calibrated on the collection itself.

A duplicate threshold picked once on someone else's data is wrong for the next collection (clip-art on
white has near-equal perceptual hashes where photos do not). So each threshold is chosen on pairs made from
the collection: known duplicates (a seeded sample of its own items, each transformed the way copies are:
resized, re-compressed, cropped; for text, words dropped and swapped) against known-different pairs (each
sampled item against its most similar other item), at the value with the best F1. What the collection
holds already-duplicated lowers the estimated precision, never the chosen recall.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

CROP = 0.10  # the share of width and height a calibration crop removes (5% each side)
RESIZE = 0.5
JPEG_QUALITY = 40
#: F-beta's beta: precision counts twice as much as recall, as one false pair merges two whole groups
BETA = 0.5
SET_ASIDE_QUANTILE = 0.1  # negatives scoring beyond this share of the known copies are taken as copies


@dataclass(frozen=True, slots=True)
class Threshold:
    """A calibrated cut: pairs scoring at or above ``value`` (``higher``) or at or below it are duplicates."""

    signal: str
    value: float
    higher: bool
    source: str  # "calibrated", "given" or "default"
    precision: float | None = None  # on the calibration pairs
    recall: float | None = None
    positives: int = 0
    negatives: int = 0
    set_aside: int = 0  # negatives scoring like known duplicates: taken as duplicates already in the collection

    def passes(self, score: float) -> bool:
        return score >= self.value if self.higher else score <= self.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "signal": self.signal,
            "value": round(self.value, 6),
            "duplicate_when": ">=" if self.higher else "<=",
            "source": self.source,
        }
        if self.source == "calibrated":
            out |= {
                "precision": round(self.precision or 0.0, 4),
                "recall": round(self.recall or 0.0, 4),
                "positives": self.positives,
                "negatives": self.negatives,
                "set_aside": self.set_aside,
            }
        return out


def best_threshold(
    signal: str, positives: Sequence[float], negatives: Sequence[float], *, higher: bool = True, beta: float = BETA
) -> Threshold:
    """The cut with the best F-beta (van Rijsbergen) separating ``positives`` (duplicates) from ``negatives``
    (ties: the strictest).

    Each sampled item weighs the same in both sets (a false positive counts ``len(positives) /
    len(negatives)``), so the cut does not depend on how many copies were made per item. A negative that
    scores like the known copies (beyond the tenth percentile of the positives) is set aside: it is most
    likely a duplicate the collection already holds (negatives are an item's most similar other items), not
    evidence against the cut."""
    pos = np.asarray(positives, dtype=np.float64)
    sign = 1.0 if higher else -1.0
    like_copies = float(np.quantile(sign * pos, SET_ASIDE_QUANTILE)) if len(pos) else np.inf
    all_neg = np.asarray(negatives, dtype=np.float64)
    neg = all_neg[sign * all_neg < like_copies]
    weight = len(pos) / len(all_neg) if len(all_neg) else 1.0
    best: tuple[float, float, float, float] | None = None  # (f1, strictness, precision, recall)
    for cut in np.unique(np.concatenate([pos, neg])):
        tp = float(np.sum(sign * pos >= sign * cut))
        fp = float(np.sum(sign * neg >= sign * cut)) * weight
        if tp == 0:
            continue
        precision, recall = tp / (tp + fp), tp / len(pos)
        f_beta = (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
        key = (f_beta, sign * cut, precision, recall)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        raise ValueError("no positive calibration pair")
    _, strict, precision, recall = best
    aside = len(all_neg) - len(neg)
    return Threshold(signal, float(sign * strict), higher, "calibrated", precision, recall, len(pos), len(neg), aside)


def image_variants(image: Image.Image, rng: np.random.Generator) -> list[tuple[str, Image.Image]]:
    """The copies a near-duplicate detector must catch: half size, JPEG at quality 40, 10% of width and height
    cropped off at a random offset."""
    w, h = image.size
    resized = image.resize((max(8, int(w * RESIZE)), max(8, int(h * RESIZE))), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    cw, ch = int(w * CROP), int(h * CROP)
    left, top = int(rng.integers(cw + 1)), int(rng.integers(ch + 1))
    cropped = image.crop((left, top, left + w - cw, top + h - ch))
    return [("resize", resized), ("jpeg", jpeg), ("crop", cropped)]


def text_variants(text: str, rng: np.random.Generator) -> list[str]:
    """Edited copies of a text: one word in ten dropped; two neighbouring words swapped; case and spacing."""
    words = text.split()
    out = []
    if len(words) >= 4:
        offset = int(rng.integers(min(10, len(words))))
        keep = [w for i, w in enumerate(words) if i % 10 != offset]
        out.append(" ".join(keep))
        swapped = list(words)
        i = int(rng.integers(len(words) - 1))
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        out.append(" ".join(swapped))
    out.append("  ".join(words).upper())
    return out


def recall_threshold(
    signal: str, positives: Sequence[float], negatives: Sequence[float], *, higher: bool, recall: float
) -> Threshold:
    """The loosest cut that still drops at most ``1 - recall`` of ``positives``: for a candidate filter, whose
    misses nothing later recovers (its precision on the calibration pairs is stated, not optimised)."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    value = float(np.quantile(pos, 1 - recall if higher else recall, method="lower"))
    hits = pos >= value if higher else pos <= value
    false = neg >= value if higher else neg <= value
    tp, fp = float(hits.sum()), float(false.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    return Threshold(signal, value, higher, "calibrated", precision, tp / len(pos), len(pos), len(neg))
