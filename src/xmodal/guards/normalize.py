"""Query text normalisation: NFKC, and the characters a reader cannot see stripped and reported.

Zero-width characters, bidirectional controls and Unicode tag characters (U+E0000–U+E007F, which can spell an
invisible ASCII message) are removed; what was removed is reported by kind, and the message hidden in tag
characters is decoded so the rules can read it too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad")
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
TAG_FIRST, TAG_LAST = 0xE0000, 0xE007F


@dataclass(frozen=True, slots=True)
class Normalized:
    """The cleaned text, how many characters of each hidden kind were removed, and the tag-character message."""

    text: str
    removed: dict[str, int] = field(default_factory=dict)
    hidden_message: str = ""

    @property
    def hidden(self) -> bool:
        return bool(self.removed)


def normalize(text: str) -> Normalized:
    """NFKC of ``text`` with zero-width, bidi-control and tag characters removed (counted by kind)."""
    if text.isascii():  # no hidden character is ASCII, and NFKC leaves ASCII as it is: nothing to do
        return Normalized(text)
    removed: dict[str, int] = {}
    kept: list[str] = []
    tags: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in ZERO_WIDTH:
            removed["zero_width"] = removed.get("zero_width", 0) + 1
        elif ch in BIDI:
            removed["bidi_control"] = removed.get("bidi_control", 0) + 1
        elif TAG_FIRST <= code <= TAG_LAST:
            removed["tag"] = removed.get("tag", 0) + 1
            if 0xE0020 <= code <= 0xE007E:
                tags.append(chr(code - TAG_FIRST))
        else:
            kept.append(ch)
    return Normalized(unicodedata.normalize("NFKC", "".join(kept)), removed, "".join(tags))


def bad_encoding(text: str) -> str | None:
    """Why ``text`` looks mis-encoded (control characters, replacement characters, unpaired surrogates), or None."""
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
    if controls:
        return f"{controls} control character(s)"
    if "\ufffd" in text:
        return "U+FFFD replacement character(s): the text was decoded with the wrong encoding"
    if any(unicodedata.category(ch) == "Cs" for ch in text):
        return "unpaired surrogate(s)"
    return None
