"""The classifier's features: lower-cased character n-grams inside word boundaries (3–5) and word uni- and
bigrams. One function, used by training (as scikit-learn's analyzer) and by the shipped model alike, so the
two can never disagree."""

from __future__ import annotations

import re

CHAR_N = (3, 5)
_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")
MAX_CHARS = 4000  # a longer text is judged on its first and last 2,000 characters


def clip(text: str) -> str:
    """``text`` cut to :data:`MAX_CHARS` (its beginning and its end)."""
    half = MAX_CHARS // 2
    return text if len(text) <= MAX_CHARS else text[:half] + " " + text[-half:]


def analyze(text: str) -> list[str]:
    """The feature names of ``text``: ``c:`` character n-grams and ``w:`` word n-grams."""
    text = _SPACE.sub(" ", clip(text).lower())
    out: list[str] = []
    low, high = CHAR_N
    for word in text.split(" "):
        if not word:
            continue
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) < n:
                break
            out.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    words = _WORD.findall(text)
    out.extend("w:" + w for w in words)
    out.extend(f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return out
