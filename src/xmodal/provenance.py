"""A hit's provenance: which strategies found it, best rank first.

A :class:`Provenance` *is* its display string (``"lexical+memory"``), so every adapter that shows a hit's
provenance (CLI, REST, MCP, the page) shows it unchanged; code reads :attr:`Provenance.names` and never
parses the string. The feedback log stores the names as a JSON list (:func:`to_stored`) and reads back
both that and the ``"a+b"`` strings older releases wrote (:func:`from_stored`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

#: What the display string puts between names (display only: nothing splits on it but the reader of old logs).
DISPLAY_SEPARATOR = "+"


class Provenance(str):
    """The contributing strategy names of one hit, best rank first; as a string, their display form."""

    names: tuple[str, ...]

    def __new__(cls, names: Iterable[str]) -> Provenance:
        given = tuple(names)
        if not given or not all(isinstance(n, str) and n for n in given):
            raise ValueError(f"provenance needs one or more non-empty strategy names, got {given!r}")
        self = super().__new__(cls, DISPLAY_SEPARATOR.join(given))
        self.names = given
        return self

    def __reduce__(self) -> tuple[type[Provenance], tuple[tuple[str, ...]]]:
        return (Provenance, (self.names,))  # copies and pickles keep the names


def names_of(provenance: str) -> tuple[str, ...]:
    """The strategy names behind one hit's provenance: a :class:`Provenance`'s names, a plain string as
    one name (dense search, a third-party mode), nothing for ``""``."""
    if isinstance(provenance, Provenance):
        return provenance.names
    return (provenance,) if provenance else ()


def to_stored(provenance: str) -> str:
    """The stored form: a JSON list of names (``"[]"`` for none)."""
    return json.dumps(list(names_of(provenance)))


def from_stored(text: str) -> str:
    """A stored provenance back: a JSON list (this release) or an ``"a+b"`` string (older releases)."""
    if text.startswith("["):
        try:
            names = json.loads(text)
        except ValueError:
            names = None
        if isinstance(names, list) and all(isinstance(n, str) and n for n in names):
            return Provenance(names) if names else ""
    if not text:
        return ""
    return Provenance(text.split(DISPLAY_SEPARATOR))  # written before provenance was structured
