"""The ``image`` medium: JPEG, PNG, WebP, GIF, BMP or TIFF, checked and decoded by :mod:`xmodal.imaging`."""

from __future__ import annotations

from pathlib import Path

from ..imaging import DECODE_SIDE, MAX_BYTES, decode_image, read_image_bytes
from ..media import suffix_of
from . import LoadedMedia, MediaRef


class ImageLoader:
    """Reads an image (refusing missing, oversized, corrupt or disallowed files), decodes it to RGB at the size
    an encoder needs (a large image comes out with its shorter side at ``DECODE_SIDE`` to twice that), and keeps
    the original bytes, unchanged, in the media store."""

    name = "image"
    max_bytes = MAX_BYTES

    def load(self, ref: MediaRef, base_dir: Path | None = None, *, item: str | None = None) -> LoadedMedia:
        data = read_image_bytes(ref, base_dir, item=item)
        return LoadedMedia(decode_image(data, item=item, min_side=DECODE_SIDE), data, suffix_of(data))
