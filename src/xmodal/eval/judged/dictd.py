"""Reading a dictd dictionary (Debian's ``dict-*`` packages): ``NAME.index`` and ``NAME.dict.dz``.

The index has one line per headword: ``headword<TAB>offset<TAB>length``, the numbers in dictd's base-64
digits (``A``–``Z``, ``a``–``z``, ``0``–``9``, ``+``, ``/``); the definitions file is gzip (dictzip) text,
an entry being ``length`` bytes at ``offset`` of the uncompressed text (dictd(8), dictzip(1)).
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

from .base import missing_data

DICTD_ROOT = Path("/usr/share/dictd")
_DIGITS = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64_number(text: str) -> int:
    """A dictd base-64 number."""
    value = 0
    for char in text:
        value = value * 64 + _DIGITS[char]
    return value


class Dictionary:
    """The entries of one dictd dictionary by lower-cased headword (a headword may have several)."""

    def __init__(self, name: str, root: Path | None = None, *, package: str | None = None) -> None:
        root = root or DICTD_ROOT
        index, data = root / f"{name}.index", root / f"{name}.dict.dz"
        if not index.is_file() or not data.is_file():
            raise missing_data(package or f"dict-{name}", index)
        self.name = name
        self._text = gzip.decompress(data.read_bytes())
        self._where: dict[str, list[tuple[int, int]]] = defaultdict(list)
        with open(index, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and not parts[0].startswith("00-database"):
                    self._where[parts[0].lower()].append((b64_number(parts[1]), b64_number(parts[2])))

    def __contains__(self, headword: str) -> bool:
        return headword.lower() in self._where

    def headwords(self) -> list[str]:
        return sorted(self._where)

    def entries(self, headword: str) -> list[str]:
        """The entries filed under ``headword`` (any case), in the dictionary's order, without repeats."""
        out: list[str] = []
        for offset, length in dict.fromkeys(self._where.get(headword.lower(), ())):
            out.append(self._text[offset : offset + length].decode("utf-8", errors="replace"))
        return out
