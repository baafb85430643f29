"""The classifier's features: lower-cased character n-grams inside word boundaries (3–5), optionally the character
n-grams that span the space between two words (``x:``, 3–5), and word uni- and bigrams. One function, used by
training (as scikit-learn's analyzer) and by the shipped model alike, so the two can never disagree."""

from __future__ import annotations

import re

import numpy as np

CHAR_N = (3, 5)
_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")
MAX_CHARS = 4000  # a longer text is judged on its first and last 2,000 characters


def clip(text: str) -> str:
    """``text`` cut to :data:`MAX_CHARS` (its beginning and its end)."""
    half = MAX_CHARS // 2
    return text if len(text) <= MAX_CHARS else text[:half] + " " + text[-half:]


def prepare(text: str) -> str:
    """``text`` as the features see it: clipped, lower-cased, runs of white space as one space."""
    return _SPACE.sub(" ", clip(text).lower())


def char_grams(word: str) -> list[str]:
    """The ``c:`` features of one word (its character n-grams, padded with a space each side)."""
    out: list[str] = []
    padded = f" {word} "
    low, high = CHAR_N
    for n in range(low, high + 1):
        if len(padded) < n:
            break
        out.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


def cross_grams(first: str, second: str) -> list[str]:
    """The ``x:`` features of two words in a row: their character n-grams that hold the space between them and a
    character of each ("ignore previous" -> ``re p``, ``e pr``…): phrases seen across their inflections."""
    out: list[str] = []
    low, high = CHAR_N
    left = first[-(high - 2) :]
    joined = f"{left} {second[: high - 2]}"
    space = len(left)
    for n in range(low, high + 1):
        for i in range(max(0, space - n + 2), min(space - 1, len(joined) - n) + 1):
            out.append("x:" + joined[i : i + n])
    return out


def word_grams(prepared: str) -> list[str]:
    """The ``w:`` features of a prepared text: word (and punctuation) unigrams and bigrams."""
    words = _WORD.findall(prepared)
    return ["w:" + w for w in words] + [f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def analyze(text: str, cross: bool = False) -> list[str]:
    """The feature names of ``text``: ``c:`` character n-grams, ``x:`` ones across word boundaries (``cross``) and
    ``w:`` word n-grams."""
    text = prepare(text)
    out: list[str] = []
    words = [w for w in text.split(" ") if w]
    for word in words:
        out.extend(char_grams(word))
    if cross:
        for a, b in zip(words, words[1:], strict=False):
            out.extend(cross_grams(a, b))
    out.extend(word_grams(text))
    return out


def analyze_cross(text: str) -> list[str]:
    """:func:`analyze` with the ``x:`` features (a named function: scikit-learn's analyzer)."""
    return analyze(text, cross=True)


def counted(columns: list[int], ends: list[int], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch's features counted: ``columns`` holds each text's feature columns (text ``i``'s end before
    ``ends[i]``), of ``width`` in all; returns the text, the column and the count of each distinct pair."""
    sizes = [end - start for start, end in zip([0, *ends], ends, strict=False)]
    doc = np.repeat(np.arange(len(ends), dtype=np.int64), sizes)
    keys, tf = np.unique(doc * width + np.asarray(columns, dtype=np.int64), return_counts=True)
    doc, col = np.divmod(keys, width)
    return doc, col, tf
