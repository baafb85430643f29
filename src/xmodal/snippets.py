"""Snippets: the passage of a hit's text that holds the most of the query's words, the words marked.

A word of the text matches a word of the query when their Snowball stems are equal (the lexical index's
analyzer, :mod:`xmodal.store.analysis`: "storms" matches "storm"); very common short words (``the``,
``of``…) never count. The passage is the window of about ``width`` characters with the most distinct
matched words (ties: the earliest), widened to word boundaries, each match wrapped in ``**``, with ``…``
where the text goes on. A text with no matched word gives its beginning.
"""

from __future__ import annotations

import re
import unicodedata

from .store.analysis import stem_word

WIDTH = 240
MARK = "**"
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with".split()
)


def _fold(word: str) -> str:
    folded = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in folded if not unicodedata.combining(c))


def query_stems(query: str) -> frozenset[str]:
    """The stems a snippet marks for ``query``."""
    return frozenset(stem_word(w) for w in (_fold(m) for m in _WORD.findall(query)) if w not in _STOP)


def snippet(text: str, query: str | None, width: int = WIDTH) -> str:
    """The best passage of ``text`` for ``query`` (see the module's docstring); ``""`` for no text."""
    text = " ".join(text.split())
    if not text:
        return ""
    wanted = query_stems(query or "")
    matches = [
        (m.start(), m.end(), stem)
        for m in _WORD.finditer(text)
        if (stem := stem_word(_fold(m.group()))) in wanted and _fold(m.group()) not in _STOP
    ]
    if not matches:
        return _cut(text, 0, width, [])
    best, best_start = -1, 0
    for i, (start, _, _) in enumerate(matches):
        inside = {stem for s, e, stem in matches[i:] if e - start <= width}
        if len(inside) > best:
            best, best_start = len(inside), start
    lead = min(best_start, width // 6)  # a little of what comes before the first match
    return _cut(text, best_start - lead, width, matches)


def _cut(text: str, start: int, width: int, matches: list[tuple[int, int, str]]) -> str:
    start = max(0, start)
    if start > 0:  # begin at a word
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    out, at = [], start
    for s, e, _ in matches:
        if s >= start and e <= end:
            out.append(text[at:s] + MARK + text[s:e] + MARK)
            at = e
    out.append(text[at:end])
    return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(text) else "")
