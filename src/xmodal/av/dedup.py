"""The ``audio`` and ``video`` fingerprinters of ``dedup`` (:mod:`xmodal.tasks.fingerprints`): Chromaprint
fingerprints of the first :data:`~xmodal.av.fingerprint.FILE_SECONDS` of a recording's sound (a video's
sound track), compared by their best bit agreement over offsets of up to 3 s.

An item added through the ``audio`` or ``video`` splitter already carries that fingerprint in its
``fingerprint`` attribute, so ``dedup`` reads it from there; other items' media bytes are decoded with
``ffmpeg``. Registered when :mod:`xmodal.av` is imported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from .decode import decode_audio
from .fingerprint import DUPLICATE_THRESHOLD, FILE_SECONDS, Fingerprint, fingerprint, from_attribute, similarity
from .probe import MediaFileError, probe


class ChromaprintFingerprinter:
    """Chromaprint fingerprints of one medium's sound (``audio``, or ``video``: its sound track)."""

    default_threshold = DUPLICATE_THRESHOLD

    def __init__(self, medium: str) -> None:
        self.medium = medium

    def fingerprint(self, data: bytes) -> Fingerprint:
        """The fingerprint of a recording's bytes (a :class:`MediaFileError` when it holds no usable sound)."""
        handle, name = tempfile.mkstemp(prefix="xmodal-dedup-", suffix=".bin")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            info = probe(name, need="any")
            if not info.audio_codec:
                raise MediaFileError(
                    f"media.{self.medium}", "has no sound track to fingerprint", "compare it by its frames instead"
                )
            fp = fingerprint(decode_audio(info, seconds=min(info.duration, FILE_SECONDS), check_length=False))
        finally:
            os.unlink(name)
        if not len(fp):
            raise MediaFileError(
                f"media.{self.medium}", "is too short to fingerprint", "give at least a second of sound"
            )
        return fp

    def from_attributes(self, attributes: Mapping[str, Any]) -> Fingerprint | None:
        """The fingerprint the splitter kept in the item's ``fingerprint`` attribute, if any."""
        value = attributes.get("fingerprint")
        if not value or not (isinstance(value, str) or all(isinstance(v, str) for v in value)):
            return None
        try:
            fp = from_attribute(value)
        except ValueError:  # not base64: someone else's attribute of that name
            return None
        return fp if len(fp) else None

    def similarity(self, a: Fingerprint, b: Fingerprint) -> float:
        return similarity(a, b)


def register() -> None:
    """Make Chromaprint the fingerprinter of ``audio`` and ``video`` in ``dedup``."""
    from ..tasks.fingerprints import register_fingerprinter

    for medium in ("audio", "video"):
        register_fingerprinter(ChromaprintFingerprinter(medium))
