"""Thumbnails: JPEG, bounded in size, kept in a bounded in-memory LRU cache. With an exporter (the server
config's ``[export_provenance]``, :mod:`xmodal.guards.provenance.export`), thumbnails and image downloads are
watermarked and C2PA-signed as they are made."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..guards.provenance.export import Exporter
from ..imaging import decode_image


class ThumbnailCache:
    """``get(path, size)`` → JPEG bytes at most ``size`` pixels on the long side."""

    def __init__(
        self,
        capacity: int = 512,
        run: Callable[[Callable[[], bytes]], bytes] | None = None,
        exporter: Exporter | None = None,
    ) -> None:
        self.capacity = capacity
        self.exporter = exporter  # None: exports go out as made (no watermark, no manifest)
        self.run = run or (lambda make: make())  # how a thumbnail is made: on the server's image-decode threads
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, size: int, *, title: str = "", ai_generated: bool = False) -> bytes:
        """The thumbnail (marked by the exporter, if any: ``title`` and ``ai_generated`` go in its manifest)."""
        key = (str(path), size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self.run(lambda: make_thumbnail(path.read_bytes(), size, self.exporter, title, ai_generated))
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return data

    def export(self, path: Path, *, title: str, ai_generated: bool = False) -> tuple[bytes, str] | None:
        """An image file as handed out, watermarked and signed, with its MIME type; None with no exporter or a
        file that cannot be decoded (sent as stored)."""
        if self.exporter is None:
            return None
        return self.exporter.file(path.read_bytes(), title=title, ai_generated=ai_generated)

    def forget_missing(self) -> int:
        """Drop the thumbnails of media files no longer there (after a delete): a deleted image leaves no copy
        in memory either. Returns how many went."""
        with self._lock:
            gone = [key for key in self._cache if not Path(key[0]).is_file()]
            for key in gone:
                del self._cache[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._cache)


def make_thumbnail(
    data: bytes, size: int, exporter: Exporter | None = None, title: str = "", ai_generated: bool = False
) -> bytes:
    image = decode_image(data, min_side=size)  # a large image is decoded near the thumbnail's size
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    if exporter is not None:
        return exporter.image(image, "JPEG", title=title or "thumbnail", ai_generated=ai_generated, quality=82)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=82)
    return out.getvalue()
