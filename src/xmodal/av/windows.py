"""Cutting a time line into segments: fixed windows with overlap, and a transcript's words per window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Default window and overlap for sound, in seconds: a 30 s window every 20 s, so a sentence cut by one
#: window's edge is whole in the next.
WINDOW = 30.0
OVERLAP = 10.0


@dataclass(frozen=True, slots=True)
class Word:
    """A transcribed word and when it is said, in seconds."""

    text: str
    start: float
    end: float


def fixed_windows(duration: float, window: float = WINDOW, overlap: float = OVERLAP) -> list[tuple[float, float]]:
    """``(start, end)`` windows of ``window`` seconds starting every ``window - overlap`` seconds, covering
    ``[0, duration]``; the last one ends at ``duration`` (a tail shorter than the overlap joins the window
    before it)."""
    if not (window > 0 and 0 <= overlap < window):
        raise ValueError(f"window {window} and overlap {overlap}: need window > 0 and 0 <= overlap < window")
    if not duration > 0:
        return []
    hop = window - overlap
    count = max(1, math.ceil((duration - overlap) / hop - 1e-9))
    spans = [(i * hop, min(i * hop + window, duration)) for i in range(count)]
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def words_between(words: Sequence[Word], start: float, end: float) -> list[Word]:
    """The words whose middle falls in ``[start, end)`` (a word on an edge belongs to one side)."""
    return [w for w in words if start <= (w.start + w.end) / 2 < end]


def join_words(words: Sequence[Word]) -> str:
    """The words as one text (Whisper's words carry their leading space)."""
    return " ".join("".join(w.text for w in words).split())
