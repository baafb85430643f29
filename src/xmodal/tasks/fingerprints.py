"""The hook for media fingerprints (audio, video) in ``dedup``.

A fingerprinter turns one medium's bytes into a fingerprint and scores two fingerprints (1: the same
recording). :mod:`xmodal.av` (Chromaprint's ``fpcalc`` for audio and a video's audio track) plugs in by
calling :func:`register_fingerprinter` when it is imported; ``dedup`` imports it if it is installed and
reports, for every medium the items carry that no fingerprinter handles, that it was not checked. A
fingerprinter that is also :class:`StoredFingerprints` reads a fingerprint the item already carries (the
``audio`` and ``video`` splitters keep one per file) instead of decoding the bytes again.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

#: Modules imported (when they exist) before fingerprinters are looked up: they register their own.
PROVIDERS = ("xmodal.av",)


@runtime_checkable
class Fingerprinter(Protocol):
    """Fingerprints of one medium (``medium``: ``audio``, ``video``)."""

    medium: str
    #: the similarity from which two fingerprints are duplicates when the caller gives none (and says why)
    default_threshold: float

    def fingerprint(self, data: bytes) -> Any:
        """The fingerprint of the medium's bytes (raises an XmodalError naming the problem)."""
        ...

    def similarity(self, a: Any, b: Any) -> float:
        """1 for the same recording, lower for others."""
        ...


@runtime_checkable
class StoredFingerprints(Protocol):
    """A fingerprinter that can also read the fingerprint an item already carries (from its splitter)."""

    def from_attributes(self, attributes: Mapping[str, Any]) -> Any | None:
        """The fingerprint kept in an item's attributes, or None when it has none (the bytes are read then)."""
        ...


_REGISTERED: dict[str, Fingerprinter] = {}


def register_fingerprinter(fingerprinter: Fingerprinter) -> None:
    """Make ``fingerprinter`` the one ``dedup`` uses for its medium."""
    if not isinstance(fingerprinter, Fingerprinter):
        raise TypeError(
            f"{fingerprinter!r} is not a Fingerprinter (medium, default_threshold, fingerprint, similarity)"
        )
    _REGISTERED[fingerprinter.medium] = fingerprinter


def fingerprinters() -> dict[str, Fingerprinter]:
    """The registered fingerprinters by medium, after importing the providers that are installed."""
    for module in PROVIDERS:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(module)
    return dict(_REGISTERED)
