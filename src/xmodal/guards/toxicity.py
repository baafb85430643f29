"""Toxicity of a text: the linear SVM of ``alt-profanity-check`` (TF-IDF of words, five sigmoid-calibrated
LinearSVC folds, probability = their mean), exported to plain JSON (:mod:`.toxicity_export`) and run with
NumPy alone — no pickle, no scikit-learn at run time.

A model file that is missing, corrupt or from another format version raises :class:`~.classifier.ModelError`:
the result guard then reports toxicity as "not checked" and search and ingest go on.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from .. import loaded
from .classifier import ModelError
from .features import counted_pairs

FORMAT = "xmodal-toxicity/1"
MODEL_FILE = "toxicity_model.json.gz"
#: scikit-learn's default token pattern (the vectorizer's), lower-cased text
TOKEN = re.compile(r"(?u)\b\w\w+\b")
THRESHOLD = 0.5  # profanity-check's own (``predict``)
#: Words that name who someone is: the single words of the identity terms of Dixon et al., "Measuring and Mitigating
#: Unintended Bias in Text Classification" (AIES 2018). The model learned them as signs of abuse (alone, "gay" scores
#: 0.98, "white" 0.70: "a white sneaker" is flagged), so :meth:`ToxicityModel.judged` does not let them alone make a
#: text offensive.
IDENTITY_TERMS = frozenset(
    "lesbian gay bisexual transgender trans queer lgbt lgbtq homosexual straight heterosexual male female nonbinary "
    "african black white european hispanic latino latina latinx mexican canadian american asian indian chinese "
    "japanese christian muslim jewish buddhist catholic protestant sikh taoist old older young younger teenage "
    "millenial elderly blind deaf paralyzed".split()
)
#: A text whose probability without its identity terms is below this share of the threshold is judged by that
#: probability (half: what is left must be well on the way to offensive for the identity terms to carry it over).
IDENTITY_SHARE = 0.5
#: How :meth:`ToxicityModel.judged` reads a text; stored with the result guard's state, so that the flagged items of
#: an index scored with another reading are scored again when it opens (:meth:`.results.ResultGuard.rejudge`).
READING = "identity-terms/1"


def pack(values: np.ndarray) -> str:
    """Little-endian float32 values as base64 (exact for the float32 the model keeps)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: Any, n: int, name: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ModelError(f"{name}: expected base64 text")
    arr = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float64)
    if arr.size != n or not np.isfinite(arr).all():
        raise ModelError(f"{name}: expected {n} finite numbers, got {arr.size}")
    return arr


@dataclass(frozen=True)
class ToxicityModel:
    """Vocabulary → column, IDF, one (coef, intercept, sigmoid a, b) per calibrated fold, and the threshold."""

    vocabulary: dict[str, int]
    idf: np.ndarray  # [n_features]
    coef: np.ndarray  # [folds, n_features]
    intercept: np.ndarray  # [folds]
    sigmoid: np.ndarray  # [folds, 2]: a, b of p = 1 / (1 + exp(a * f + b))
    threshold: float
    source: str

    def probability(self, text: str) -> float:
        """P(offensive) of ``text`` (0 when none of its words is in the vocabulary)."""
        counts = Counter(col for tok in TOKEN.findall(text.lower()) if (col := self.vocabulary.get(tok)) is not None)
        if not counts:
            f = self.intercept
        else:
            cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            x = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * self.idf[cols]
            x /= np.linalg.norm(x)
            f = self.coef[:, cols] @ x + self.intercept
        p = 1.0 / (1.0 + np.exp(self.sigmoid[:, 0] * f + self.sigmoid[:, 1]))
        return float(p.mean())

    def judged(self, texts: Sequence[str]) -> np.ndarray:
        """The probability each text is acted on: :meth:`probabilities`, except that a text whose identity terms
        (:data:`IDENTITY_TERMS`) are what carries it gets the probability of its other words (never a higher one),
        when that is below :data:`IDENTITY_SHARE` of the threshold: "a white sneaker" 0.70 → 0.04, while "you
        stupid white trash" stays offensive. It counters the model's bias against those words as what Garg et al.
        ("Counterfactual Fairness in Text Classification through Robustness", AIES 2019) call blindness, but only
        where the rest of the text is benign, so that an attack on a group in otherwise offensive words is flagged."""
        p = self.probabilities(texts)
        named = [i for i, text in enumerate(texts) if not IDENTITY_TERMS.isdisjoint(TOKEN.findall(text.lower()))]
        if named:
            without = self._blind.probabilities([texts[i] for i in named])
            rows = np.asarray(named, dtype=np.int64)
            p[rows] = np.where(without < IDENTITY_SHARE * self.threshold, np.minimum(without, p[rows]), p[rows])
        return p

    @cached_property
    def _blind(self) -> ToxicityModel:
        """This model with the identity terms out of its vocabulary (each counts as an unknown word)."""
        return replace(self, vocabulary={w: c for w, c in self.vocabulary.items() if w not in IDENTITY_TERMS})

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`probability` of each text (to rounding), the batch's TF-IDF rows weighed in one NumPy pass."""
        find = self.vocabulary.get
        cols: list[int] = []
        ends: list[int] = []
        for text in texts:
            cols.extend(map(find, TOKEN.findall(text.lower()), repeat(-1)))  # -1: not in the vocabulary
            ends.append(len(cols))
        n = len(texts)
        found = np.asarray(cols, dtype=np.int64)
        sizes = np.diff(np.asarray([0, *ends], dtype=np.int64)).astype(np.int64)
        doc = np.repeat(np.arange(n, dtype=np.int64), sizes)
        known = found >= 0
        doc, col, tf = counted_pairs(doc[known], found[known], len(self.idf))
        x = tf * self.idf[col]
        norm = np.sqrt(np.bincount(doc, x * x, minlength=n))
        x = x / norm[doc]  # a text without a known word has no entry (and norm 0): f is the intercept alone
        f = np.stack([np.bincount(doc, self.coef[k, col] * x, minlength=n) for k in range(len(self.coef))], axis=1)
        f = f + self.intercept  # [n, folds]
        p = 1.0 / (1.0 + np.exp(self.sigmoid[:, 0] * f + self.sigmoid[:, 1]))
        return np.asarray(p.mean(axis=1), dtype=np.float64)


def from_dict(data: Any) -> ToxicityModel:
    """The model of a parsed file; :class:`ModelError` when it is not one of this format."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"not a toxicity model of format {FORMAT} (got {got!r})")
    try:
        words = data["vocabulary"]
        folds = int(data["folds"])
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or folds < 1:
            raise ModelError("vocabulary: expected a list of words, folds >= 1")
        n = len(words)
        return ToxicityModel(
            {w: i for i, w in enumerate(words)},
            _unpack(data["idf"], n, "idf"),
            _unpack(data["coef"], folds * n, "coef").reshape(folds, n),
            _unpack(data["intercept"], folds, "intercept"),
            _unpack(data["sigmoid"], folds * 2, "sigmoid").reshape(folds, 2),
            float(data["threshold"]),
            str(data.get("source", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"malformed toxicity model ({exc.__class__.__name__}: {exc})") from None


def load(path: Path | None = None) -> ToxicityModel:
    """The model at ``path``, or the one shipped in the package."""
    try:
        raw = path.read_bytes() if path is not None else resources.files(__package__).joinpath(MODEL_FILE).read_bytes()
        data = json.loads(gzip.decompress(raw).decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no toxicity model file at {path or MODEL_FILE}") from None
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"toxicity model {path or MODEL_FILE} is corrupt ({exc})") from None
    return from_dict(data)


def shared(path: Path | None = None) -> ToxicityModel:
    """:func:`load`, once per file per process (every index that opens the guards gets the same model)."""
    return loaded.shared("toxicity", path, lambda: load(path))
