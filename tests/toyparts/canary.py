"""A media loader module that must never be imported unless an index names it: importing it records that it
was (``IMPORTS``), so a test can tell whether data made xmodal import code."""

from __future__ import annotations

from pathlib import Path

from xmodal.media_loaders import LoadedMedia, MediaRef

NAME = "tests.toyparts.canary:Canary"
IMPORTS: list[str] = [__name__]


class Canary:
    """A medium of any bytes, kept as they are."""

    name = NAME
    max_bytes = 1024

    def load(self, ref: MediaRef, base_dir: Path | None = None, *, item: str | None = None) -> LoadedMedia:
        data = ref if isinstance(ref, bytes) else ref.encode()
        return LoadedMedia(data.decode("latin-1"), data, ".canary")
