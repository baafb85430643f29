"""Turning accepted items into encoded store entries, one bad item never failing the batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders import Content, Encoder, normalize
from ..errors import ValidationError, XmodalError
from ..imaging import decode_image, read_image_bytes
from ..media import MediaStore
from ..records import Item, VectorKind

Entry = tuple[Item, dict[VectorKind, np.ndarray]]

_IO_THREADS = 4  # image decoding (releases the GIL) and media fsyncs (I/O waits) overlap on these
_io_pool: ThreadPoolExecutor | None = None
_io_lock = threading.Lock()


def _io() -> ThreadPoolExecutor:
    global _io_pool
    with _io_lock:
        if _io_pool is None:
            _io_pool = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="xmodal-io")
        return _io_pool


@dataclass(frozen=True, slots=True)
class Rejection:
    """An item that was not added: where it came from (id, or file and line) and why."""

    where: str
    reason: str


@dataclass(slots=True)
class AddReport:
    """The outcome of an ``add``: ids added (or replaced) and every rejected item with its reason."""

    added: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def merge(self, other: AddReport) -> None:
        self.added.extend(other.added)
        self.rejected.extend(other.rejected)

    def to_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "rejected": [{"where": r.where, "reason": r.reason} for r in self.rejected],
        }


@dataclass(frozen=True, slots=True)
class Loaded:
    item: Item
    image: Image.Image | None
    image_bytes: bytes | None


def load_media(items: Sequence[Item], base_dir: Path | None, report: AddReport) -> list[Loaded]:
    """Read and decode each item's image (on a few threads); failed items are rejected, the others kept."""

    def load(item: Item) -> Loaded | Rejection:
        if item.image is None:
            return Loaded(item, None, None)
        try:
            data = read_image_bytes(item.image, base_dir, item=item.id)
            return Loaded(item, decode_image(data, item=item.id), data)
        except XmodalError as exc:
            return Rejection(item.id, str(exc))

    with_images = sum(item.image is not None for item in items)
    results = list(_io().map(load, items)) if with_images > 1 else [load(item) for item in items]
    loaded = []
    for result in results:
        if isinstance(result, Rejection):
            report.rejected.append(result)
        else:
            loaded.append(result)
    return loaded


def encode_entries(loaded: Sequence[Loaded], encoder: Encoder, media: MediaStore) -> list[Entry]:
    """Encode the text and image of each item and derive the combined vector (renormalised mean).

    The media files are written (and fsynced) on the I/O threads while the encoder runs.
    """
    stored: dict[bytes, Future[str]] = {}
    for entry in loaded:
        if entry.image_bytes is not None and entry.image_bytes not in stored:
            stored[entry.image_bytes] = _io().submit(media.put, entry.image_bytes)
    with_text = [i for i, entry in enumerate(loaded) if VectorKind.TEXT in entry.item.vector_kinds()]
    with_image = [i for i, entry in enumerate(loaded) if entry.image is not None]
    text_vecs = encoder.encode_documents([Content(text=loaded[i].item.document_text) for i in with_text])
    image_vecs = encoder.encode_documents([Content(image=loaded[i].image) for i in with_image])
    vectors: list[dict[VectorKind, np.ndarray]] = [{} for _ in loaded]
    for row, i in enumerate(with_text):
        vectors[i][VectorKind.TEXT] = text_vecs[row]
    for row, i in enumerate(with_image):
        vectors[i][VectorKind.IMAGE] = image_vecs[row]
        if VectorKind.TEXT in vectors[i]:
            vectors[i][VectorKind.COMBINED] = normalize(vectors[i][VectorKind.TEXT] + image_vecs[row])
    entries = []
    for entry, vecs in zip(loaded, vectors, strict=True):
        item = entry.item
        if entry.image_bytes is not None:
            item = replace(item, image=stored[entry.image_bytes].result())
        entries.append((item, vecs))
    return entries


def dedupe(items: Sequence[Item], seen: set[str], report: AddReport) -> list[Item]:
    """Drop repeated ids within one add call (the first wins) and record why."""
    kept = []
    for item in items:
        if item.id in seen:
            err = ValidationError("id", "duplicate id in this batch", "give each item its own id", item=item.id)
            report.rejected.append(Rejection(item.id, str(err)))
            continue
        seen.add(item.id)
        kept.append(item)
    return kept
