"""The injection/jailbreak classifier shipped with xmodal: a linear model over TF-IDF features
(:mod:`.features`) with a Platt-calibrated probability, stored as plain JSON (vocabulary, IDF weights,
coefficients, calibration, threshold) — no pickle. It runs with NumPy alone.

A model file that is missing, corrupt or from another format version raises :class:`ModelError`; the guard
then reports the classifier as "not checked" and the rules still run.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import loaded
from .features import (
    CHAR_N,
    CUE_NAMES,
    char_grams,
    counted,
    cross_grams,
    cue_matrix,
    cues,
    prepare,
    word_grams,
)

FORMAT = "xmodal-guard-classifier/1"
MODEL_FILE = "injection_model.json.gz"
WORD_CACHE = 200_000  # words (and word pairs' joints) whose feature columns are kept (a few tens of MB at most)
CROSS = CHAR_N[1] - 2  # the characters of each word that an x: n-gram can hold (features.cross_grams)


class ModelError(Exception):
    """The classifier file cannot be used (missing, corrupt, or another format version)."""


@dataclass(frozen=True)
class Classifier:
    """Vocabulary → column, IDF and coefficient per column, intercept, Platt ``a``/``b`` and the threshold."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float]
    threshold: float
    meta: dict[str, Any]
    cue_coef: tuple[float, ...] = ()  # the weight of each of :data:`.features.CUES` (none: a model without them)

    def __post_init__(self) -> None:
        # plain lists: a query has tens of features, where NumPy's per-call overhead would dominate
        object.__setattr__(self, "_idf", self.idf.tolist())
        object.__setattr__(self, "_coef", self.coef.tolist())
        object.__setattr__(self, "_words", {})  # word -> the columns of its character n-grams (a cache)
        object.__setattr__(self, "_pairs", {})  # "abc de" -> the columns of its x: n-grams (a cache)
        object.__setattr__(self, "_cross", bool(self.meta.get("cross_grams")))  # the x: features (features.py)

    def _char_columns(self, word: str) -> tuple[int, ...]:
        cache: dict[str, tuple[int, ...]] = self.__dict__["_words"]
        found = cache.get(word)
        if found is None:
            find = self.vocabulary.get
            found = tuple(col for f in char_grams(word) if (col := find(f)) is not None)
            if len(cache) < WORD_CACHE:
                cache[word] = found
        return found

    def _cross_columns(self, joined: str) -> tuple[int, ...]:
        """The columns of the ``x:`` features of two words in a row, given as the first's last and the second's
        first few characters with a space between (all that :func:`~.features.cross_grams` reads of them)."""
        cache: dict[str, tuple[int, ...]] = self.__dict__["_pairs"]
        found = cache.get(joined)
        if found is None:
            find = self.vocabulary.get
            left, _, right = joined.partition(" ")
            found = tuple(col for f in cross_grams(left, right) if (col := find(f)) is not None)
            if len(cache) < WORD_CACHE:
                cache[joined] = found
        return found

    def _columns(self, prepared: str) -> list[int]:
        """The columns of the features of a prepared text that the model knows (one per occurrence)."""
        find = self.vocabulary.get
        held = self.__dict__["_words"].get  # a word's columns when cached (most words), else computed
        columns = self._char_columns
        cols: list[int] = []
        words = [w for w in prepared.split(" ") if w]
        for word in words:
            found = held(word)
            cols.extend(columns(word) if found is None else found)
        if self.__dict__["_cross"]:
            pair = self.__dict__["_pairs"].get
            crossed = self._cross_columns
            for a, b in zip(words, words[1:], strict=False):
                joined = f"{a[-CROSS:]} {b[:CROSS]}"
                found = pair(joined)
                cols.extend(crossed(joined) if found is None else found)
        cols.extend(c for feature in word_grams(prepared) if (c := find(feature)) is not None)
        return cols

    def probability(self, text: str) -> float:
        """The calibrated probability that ``text`` is an injection or jailbreak attempt."""
        counts: dict[int, int] = {}
        for col in self._columns(prepare(text)):  # the features of analyze(), each word's n-grams cached
            counts[col] = counts.get(col, 0) + 1
        idf: list[float] = self.__dict__["_idf"]
        coef: list[float] = self.__dict__["_coef"]
        dot = norm2 = 0.0
        for col, tf in counts.items():
            weight = (1.0 + math.log(tf)) * idf[col]  # sublinear tf and L2 norm, as trained
            dot += weight * coef[col]
            norm2 += weight * weight
        z = self.intercept + (dot / math.sqrt(norm2) if norm2 else 0.0)
        if self.cue_coef:
            z += sum(w for w, on in zip(self.cue_coef, cues(text), strict=True) if on)
        a, b = self.platt
        return 1.0 / (1.0 + math.exp(-(a * z + b)))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`probability` of each text (to rounding), the features of a batch weighed and summed in one
        NumPy pass: what is left in Python is looking up each word's cached columns."""
        cols: list[int] = []
        ends: list[int] = []
        for text in texts:
            cols.extend(self._columns(prepare(text)))
            ends.append(len(cols))
        n = len(texts)
        doc, col, tf = counted(cols, ends, len(self.idf))  # (text, column) pairs and their counts
        weight = (1.0 + np.log(tf)) * self.idf[col]  # sublinear tf and L2 norm, as trained
        dot = np.bincount(doc, weight * self.coef[col], minlength=n)
        norm = np.sqrt(np.bincount(doc, weight * weight, minlength=n))
        z = self.intercept + np.divide(dot, norm, out=np.zeros(n), where=norm > 0)
        if self.cue_coef and n:
            z = z + cue_matrix(list(texts)) @ np.asarray(self.cue_coef)
        a, b = self.platt
        return np.asarray(1.0 / (1.0 + np.exp(-(a * z + b))), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        return {
            "format": FORMAT,
            "terms": terms,
            "idf": [round(float(v), 5) for v in self.idf],
            "coef": [round(float(v), 5) for v in self.coef],
            "intercept": self.intercept,
            "platt": list(self.platt),
            "threshold": self.threshold,
            "meta": self.meta,
            **({"cues": list(CUE_NAMES), "cue_coef": [round(v, 5) for v in self.cue_coef]} if self.cue_coef else {}),
        }

    def save(self, path: Path) -> None:
        data = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(data, mtime=0))

    @classmethod
    def from_json(cls, data: Any, source: str) -> Classifier:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ModelError(f"{source}: not a {FORMAT} model (format {found!r}); retrain with xmodal.guards.train")
        try:
            terms = [str(t) for t in data["terms"]]
            idf = np.asarray(data["idf"], dtype=np.float64)
            coef = np.asarray(data["coef"], dtype=np.float64)
            a, b = (float(v) for v in data["platt"])
            cue_coef = tuple(float(v) for v in data.get("cue_coef", ()))
            if cue_coef and tuple(data.get("cues", ())) != CUE_NAMES:
                raise ModelError(f"{source}: its cues {data.get('cues')} are not this version's; retrain")
            model = cls(
                {t: i for i, t in enumerate(terms)},
                idf,
                coef,
                float(data["intercept"]),
                (a, b),
                float(data["threshold"]),
                dict(data.get("meta", {})),
                cue_coef,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: corrupt model ({type(exc).__name__}: {exc})") from None
        bad_cues = not all(math.isfinite(v) for v in cue_coef)
        if not (len(terms) == idf.shape[0] == coef.shape[0]) or not np.all(np.isfinite(coef)) or bad_cues:
            raise ModelError(f"{source}: corrupt model (terms, idf and coef differ in length or hold non-numbers)")
        return model


def load(path: Path | None = None) -> Classifier:
    """The model at ``path`` (default: the one shipped in this package); :class:`ModelError` if unusable."""
    try:
        if path is None:
            raw = resources.files(__package__).joinpath(MODEL_FILE).read_bytes()
            source = f"{__package__}/{MODEL_FILE}"
        else:
            raw, source = Path(path).read_bytes(), str(path)
    except OSError as exc:
        raise ModelError(f"cannot read the guard classifier: {exc}") from None
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, EOFError, ValueError) as exc:
        raise ModelError(f"{source}: corrupt model ({exc})") from None
    return Classifier.from_json(data, source)


def shared(path: Path | None = None) -> Classifier:
    """:func:`load`, once per file per process (every index that opens the guards gets the same model)."""
    return loaded.shared("guard-classifier", path, lambda: load(path))
