"""What a Ray worker of a distributed add runs (:mod:`xmodal.ingest.ray_ingest`): the index's encoder, built
once per worker, decoding and encoding batches of items.

A worker needs neither the index folder nor the store: it reads the items' media from the catalog's folder
(a path every node sees: a shared folder), and sends back the entries with the media bytes, which the
driver files in the index's media store under the same content-hash references (:func:`media_ref`).
Nothing here imports Ray: the driver wraps :class:`BatchEncoder` in ``ray.remote``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..encoders import Content, Encoder, identity, kinds_of
from ..media import MediaStore, media_ref
from ..records import Item
from ..settings import recreate_encoder
from .prepare import AddReport, Entry, encode_entries, load_media
from .vectors import given_entries

log = logging.getLogger(__name__)


class PendingMedia(MediaStore):
    """A media store that files nothing: it names each medium by its content hash, as the index's store
    will, and keeps the bytes for the driver to write there."""

    def __init__(self) -> None:
        super().__init__(Path(os.devnull))
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes, suffix: str | None = None) -> str:
        ref = media_ref(data, suffix)
        self.blobs[ref] = data
        return ref


@dataclass(slots=True)
class EncodedBatch:
    """A batch as a worker encoded it: the entries, the media bytes by reference, the items refused (with
    their reasons), and which worker took how long."""

    entries: list[Entry]
    media: dict[str, bytes]
    report: AddReport
    worker: str
    seconds: float
    items: int = field(default=0)


class BatchEncoder:
    """The index's encoder on a worker (made from the index's recorded encoder config and the options given
    for the workers, e.g. ``{"device": "cuda"}``), checked to be the same model as the index's."""

    def __init__(self, config: dict[str, Any], options: dict[str, Any], dim: int) -> None:
        self.encoder: Encoder = recreate_encoder(config, options)
        identity.check(config, self.encoder.config())
        self.dim = dim
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._warm_up()

    def _warm_up(self) -> None:
        """Load the models now (a text and an image encoded), so that the first batch is as fast as the next:
        a failure here is left for the batches to report, item by item."""
        modalities: frozenset[str] = getattr(self.encoder, "modalities", frozenset())
        samples = [Content(text="warm up")] if "text" in modalities else []
        if "image" in modalities:
            samples.append(Content(image=Image.new("RGB", (32, 32), (128, 128, 128))))
        try:
            for sample in samples:
                self.encoder.encode_documents([sample])
        except Exception as exc:  # noqa: BLE001 (any failure: the batches meet it again and say it)
            log.warning("warming up the encoder on a Ray worker failed: %s", exc)

    def pid(self) -> int:
        return os.getpid()

    def encode(self, items: list[Item], base_dir: str | None, given: dict[str, Any]) -> EncodedBatch:
        """Decode and encode ``items`` (those in ``given`` come with their own vectors), as
        :meth:`xmodal.Engine.add` does: a bad item is refused alone, into the batch's report."""
        started = time.perf_counter()
        report, media = AddReport(), PendingMedia()
        base = Path(base_dir) if base_dir is not None else None
        own = [item for item in items if item.id in given]
        rest = [item for item in items if item.id not in given]
        entries = encode_entries(load_media(rest, base, report), self.encoder, media, report)
        if own:
            loaded = load_media(own, base, report)
            entries += given_entries(loaded, given, kinds_of(self.encoder), self.dim, media, report)
        seconds = time.perf_counter() - started
        return EncodedBatch(entries, media.blobs, report, self.name, seconds, len(items))
