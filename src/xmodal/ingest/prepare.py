"""Turning accepted items into encoded store entries, one bad item never failing the batch."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from ..encoders import Content, Encoder, kinds_of, normalize
from ..errors import ValidationError, XmodalError
from ..media import Media
from ..media_loaders import TEXT, LoadedMedia, media_loader
from ..records import Item

Entry = tuple[Item, dict[str, np.ndarray]]
T = TypeVar("T")

_IO_THREADS = 4  # media decoding (releases the GIL) and media fsyncs (I/O waits) overlap on these
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
    """An item with each of its media loaded (content for the encoder, bytes to keep)."""

    item: Item
    media: dict[str, LoadedMedia] = field(default_factory=dict)

    @property
    def image(self) -> Image.Image | None:
        found = self.media.get("image")
        return None if found is None else found.content


def load_media(items: Sequence[Item], base_dir: Path | None, report: AddReport) -> list[Loaded]:
    """Read, check and decode each item's media with their loaders (on a few threads); an item whose
    medium is refused is rejected with the reason, the others are kept."""

    def load(item: Item) -> Loaded | Rejection:
        try:
            return Loaded(
                item, {name: media_loader(name).load(ref, base_dir, item=item.id) for name, ref in item.media.items()}
            )
        except XmodalError as exc:
            return Rejection(item.id, str(exc))

    with_media = sum(bool(item.media) for item in items)
    results = list(_io().map(load, items)) if with_media > 1 else [load(item) for item in items]
    loaded = []
    for result in results:
        if isinstance(result, Rejection):
            report.rejected.append(result)
        else:
            loaded.append(result)
    return loaded


def encode_entries(
    loaded: Sequence[Loaded],
    encoder: Encoder,
    media: Media,
    report: AddReport | None = None,
    *,
    made: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> list[Entry]:
    """Encode each item into the vector kinds its encoder declares (:func:`~xmodal.encoders.kinds_of`)
    from the parts the item's modality has: each part (the text, each medium) is encoded once, in one
    batch per part, and a kind made of several parts is the renormalised mean of their vectors.

    An item the encoder makes no vector of is rejected into ``report`` (or raises without one). The
    accepted media are written to the media store (and fsynced) on the I/O threads while the encoder runs.
    ``made`` maps an item id to vectors of its parts made already (a recording embedded in segments: the mean
    of theirs, :mod:`xmodal.ingest.recordings`), which are not encoded again.
    """
    kinds = kinds_of(encoder)
    wanted: list[list[str]] = []
    keep: list[Loaded] = []
    for entry in loaded:
        parts = entry.item.modality.parts
        mine = [kind for kind, needs in kinds.items() if set(needs) <= parts]
        if not mine:
            err = ValidationError(
                "modality",
                f"encoder {encoder.name!r} makes no vector from {entry.item.modality.value}",
                f"use an encoder of that medium (this one makes {', '.join(kinds)})",
                item=entry.item.id,
            )
            if report is None:
                raise err
            report.rejected.append(Rejection(entry.item.id, str(err)))
            continue
        keep.append(entry)
        wanted.append(mine)
    stored: dict[bytes, Future[str]] = {}
    for entry in keep:
        for medium in entry.media.values():
            if medium.data is not None and medium.data not in stored:
                stored[medium.data] = _io().submit(media.put, medium.data, medium.suffix)
    per_part: list[dict[str, np.ndarray]] = [dict((made or {}).get(entry.item.id, {})) for entry in keep]
    needed: dict[str, list[int]] = {}
    for i, mine in enumerate(wanted):
        for part in dict.fromkeys(p for kind in mine for p in kinds[kind]):
            if part not in per_part[i]:
                needed.setdefault(part, []).append(i)
    failed: dict[int, ValidationError] = {}
    for part in sorted(needed, key=lambda p: (p != TEXT, p != "image", p)):
        rows = [i for i in needed[part] if i not in failed]
        vecs, errors = _encode_part(encoder, [_content(keep[i], part) for i in rows])
        for row, i in enumerate(rows):
            if row in errors:
                failed[i] = errors[row]
            else:
                per_part[i][part] = vecs[row]
    for i, err in sorted(failed.items()):
        named = ValidationError(err.field, err.problem, err.fix, item=keep[i].item.id)
        if report is None:
            raise named
        report.rejected.append(Rejection(keep[i].item.id, str(named)))
    entries = []
    for i, (entry, mine, by_part) in enumerate(zip(keep, wanted, per_part, strict=True)):
        if i in failed:
            continue
        vectors: dict[str, np.ndarray] = {}
        for kind in mine:
            needs = kinds[kind]
            vec = by_part[needs[0]] if len(needs) == 1 else normalize(np.sum([by_part[p] for p in needs], axis=0))
            vectors[kind] = vec
        refs = {
            name: stored[m.data].result() if m.data is not None else entry.item.media[name]
            for name, m in entry.media.items()
        }
        item = replace(entry.item, media=refs) if entry.media else entry.item
        entries.append((item, vectors))
    return entries


def _encode_part(encoder: Encoder, contents: list[Content]) -> tuple[np.ndarray, dict[int, ValidationError]]:
    """The vectors of one part over a batch, and the rows the encoder refused: a batch it refuses (a remote
    model's bad answer for one input) is encoded again one content at a time, so the others are kept. An
    error for every content (an encoder that encodes none of them), or a :class:`~xmodal.errors.ConfigError`
    (a model that cannot serve this index), stops the whole add."""
    if not contents:
        return np.zeros((0, 0), np.float32), {}
    try:
        return encoder.encode_documents(contents), {}
    except ValidationError:
        if len(contents) == 1:
            raise
    vectors: list[np.ndarray | None] = []
    errors: dict[int, ValidationError] = {}
    for row, content in enumerate(contents):
        try:
            vectors.append(encoder.encode_documents([content])[0])
        except ValidationError as exc:
            errors[row] = exc
            vectors.append(None)
    if len(errors) == len(contents):  # the encoder takes none of them: not a matter of one item
        raise errors[0]
    dim = next((v.shape[0] for v in vectors if v is not None), 0)
    out = np.stack([v if v is not None else np.zeros(dim, np.float32) for v in vectors])
    return out, errors


def _content(entry: Loaded, part: str) -> Content:
    if part == TEXT:
        return Content(text=entry.item.document_text)
    return Content(media={part: entry.media[part].content})


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
