"""Content-addressed media files inside the index folder: accepted media are kept, not referenced.

An item's media (an image, or whatever a media loader of :mod:`xmodal.media_loaders` accepts) are
copied to ``media/<sha256[:2]>/<sha256>.<ext>`` and fsynced before the item is committed, so an
acknowledged item never points at a file the user later moves or deletes. A write that finds no space
leaves no ``.tmp`` file behind and is a :class:`~xmodal.errors.DiskFull`; one the disk fails otherwise (an
``fsync`` answering ``EIO``) a :class:`~xmodal.errors.StorageError` naming the file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol

from .errors import NotFoundError, StorageError
from .store.files import write_bytes
from .store.space import space_guard

_EXTENSIONS = {
    b"\xff\xd8": ".jpg",
    b"\x89P": ".png",
    b"RI": ".webp",
    b"GI": ".gif",
    b"BM": ".bmp",
    b"II": ".tif",
    b"MM": ".tif",
}


_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def suffix_of(data: bytes) -> str:
    """The file suffix of an image's bytes (``.bin`` when not a known image format)."""
    return _EXTENSIONS.get(data[:2], ".bin")


def media_ref(data: bytes, suffix: str | None = None) -> str:
    """The reference :meth:`MediaStore.put` files ``data`` under: its content hash, with the given file suffix
    (the media loader's) or the one sniffed from an image's first bytes."""
    digest = hashlib.sha256(data).hexdigest()
    ext = suffix if suffix and _SUFFIX.fullmatch(suffix) else suffix_of(data)
    return f"media/{digest[:2]}/{digest}{ext}"


class Media(Protocol):
    """Where an index's media files live: this module's folder store, or a bucket (:mod:`xmodal.media_s3`)."""

    def put(self, data: bytes, suffix: str | None = None) -> str: ...

    def path(self, ref: str) -> Path: ...

    def remove(self, ref: str) -> bool: ...


class MediaStore:
    """Stores blobs by content hash under one folder and resolves references back to paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes, suffix: str | None = None) -> str:
        """Write ``data`` durably (once per distinct content) and return its reference; the file suffix
        is ``suffix`` (the media loader's) or sniffed from an image's first bytes."""
        ref = media_ref(data, suffix)
        path = self.root / ref
        if not path.exists():
            try:
                with space_guard(self.root):  # two writers of one content (two adds at once) each write whole
                    write_bytes(path, data, sync=True)
            except OSError as exc:  # no space is a DiskFull (not an OSError) by now
                raise StorageError(
                    f"{path}: the media file could not be written ({exc}); the item was not added: check the disk "
                    f"holding {self.root}, then retry"
                ) from exc
        return ref

    def path(self, ref: str) -> Path:
        """The file behind a reference; refuses references that leave the media folder."""
        path = (self.root / ref).resolve()
        media = (self.root / "media").resolve()
        if media not in path.parents or not path.is_file():
            raise NotFoundError(f"no media file {ref!r}")
        return path

    def remove(self, ref: str) -> bool:
        """Delete the file behind ``ref`` (no longer held by any item); False when it was not there."""
        try:
            path = self.path(ref)
        except NotFoundError:
            return False
        path.unlink(missing_ok=True)
        return True
