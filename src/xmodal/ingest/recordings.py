"""Recordings an encoder embeds in time segments become a parent item and one segment item per range.

Some models embed a long recording as segments (Nova Multimodal Embeddings' asynchronous API splits audio and
video longer than 30 s into ranges of ``segment_seconds``), through the optional encoder hook
``segmented(medium, content)`` (see :class:`~xmodal.encoders.Encoder`). On the ordinary add path
(:meth:`xmodal.Engine.add`, so ``xmodal add``, ``POST /items`` and the MCP ``add_items`` tool) such a
recording is added as its own item, whose vector of that medium is the renormalised mean of its segments',
and one segment item per range (``parent``, ``span`` of start and end seconds, id ``parent#t<start>``, the
recording as its medium so a hit plays from its start), each with the vector the model made for that range:
one job per recording, no second request per segment. Adding the recording again replaces its segments
(:func:`stale_segments` lists those the new ones do not replace).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..encoders import SegmentVector, kinds_of, normalize
from ..errors import ValidationError
from ..records import Item, Span
from ..splitters import SPLITTER_ATTRIBUTE, segment_id, span_label
from .prepare import AddReport, Entry, Loaded, Rejection

#: The media a recording may be embedded from in segments.
RECORDING_MEDIA = ("audio", "video")


@dataclass(frozen=True, slots=True)
class Segmented:
    """A recording the encoder was asked about: the medium and its segments (vectors of the index's dim; none
    when the model made one vector of it, a short recording)."""

    medium: str
    segments: list[SegmentVector]

    def mean(self) -> np.ndarray:
        """The recording's own vector of that medium: the renormalised mean of its segments'."""
        stacked = np.stack([s.vector for s in self.segments]).astype(np.float64)
        out: np.ndarray = normalize(stacked.mean(axis=0, keepdims=True))[0]
        return out


def segment_recordings(loaded: Sequence[Loaded], encoder: object, report: AddReport) -> tuple[
    list[Loaded], dict[str, Segmented]
]:  # fmt: skip
    """Ask ``encoder`` (when it has the ``segmented`` hook) for the segments of each item's recording (an item
    with no parent and an ``audio`` or ``video`` medium the encoder makes a vector kind of, not a file a
    splitter cut into its own segments); the items kept (one the model refused is rejected into ``report``) and
    the recordings asked about by id (with no segments for a short one). A
    :class:`~xmodal.errors.ConfigError` (no S3 staging location, a model that cannot serve the index) stops
    the add, as it does for the one-vector path."""
    hook = getattr(encoder, "segmented", None)
    if not callable(hook):
        return list(loaded), {}
    media = {part for needs in kinds_of(encoder).values() for part in needs if part in RECORDING_MEDIA}
    kept: list[Loaded] = []
    found: dict[str, Segmented] = {}
    for entry in loaded:
        medium = next((m for m in RECORDING_MEDIA if m in media and m in entry.media), None)
        if entry.item.parent is not None or medium is None or SPLITTER_ATTRIBUTE in entry.item.attributes:
            kept.append(entry)
            continue
        try:
            segments = hook(medium, entry.media[medium].content)
        except ValidationError as exc:
            named = ValidationError(exc.field, exc.problem, exc.fix, item=entry.item.id)
            report.rejected.append(Rejection(entry.item.id, str(named)))
            continue
        found[entry.item.id] = Segmented(medium, list(segments or []))
        kept.append(entry)
    return kept, found


def with_segments(entries: Sequence[Entry], found: Mapping[str, Segmented], encoder: object) -> list[Entry]:
    """``entries`` with, after each segmented recording's own entry, one entry per segment; the recording's
    attributes gain ``segments`` (how many) and ``duration`` (seconds, unless it has one)."""
    if not found:
        return list(entries)
    kinds = kinds_of(encoder)
    out: list[Entry] = []
    for item, vectors in entries:
        recording = found.get(item.id)
        if recording is None or not recording.segments:
            out.append((item, vectors))
            continue
        segments = recording.segments
        attributes = {**item.attributes, "segments": len(segments)}
        attributes.setdefault("duration", max(s.end for s in segments))
        out.append((replace(item, attributes=attributes), vectors))
        out.extend(_segment_entries(item, recording, kinds))
    return out


def _segment_entries(parent: Item, recording: Segmented, kinds: Mapping[str, tuple[str, ...]]) -> list[Entry]:
    medium = recording.medium
    mine = [kind for kind, needs in kinds.items() if set(needs) == {medium}]
    name = parent.title or parent.id
    out: list[Entry] = []
    for seg in recording.segments:
        span = Span(start=seg.start, end=seg.end)
        item = Item.create(
            segment_id(parent.id, span),
            title=f"{name} — {span_label(span)}",
            attributes={"segment": seg.index},
            media={medium: parent.media[medium]},
            parent=parent.id,
            span=span,
        )
        out.append((item, {kind: seg.vector for kind in mine}))
    return out


def made_segments(parent: str, children: Iterable[Item]) -> list[str]:
    """The ids of those of ``parent``'s ``children`` that an add of it as a segmented recording made (a time
    span, a ``segment`` attribute and the id :func:`~xmodal.splitters.segment_id` gives), not segments added
    under it otherwise."""
    return [
        child.id
        for child in children
        if child.span is not None
        and child.span.page is None
        and "segment" in child.attributes
        and child.id == segment_id(parent, child.span)
    ]


def stale_segments(
    found: Mapping[str, Segmented], entries: Iterable[Entry], existing: Mapping[str, Iterable[str]]
) -> list[str]:
    """The ids of the segments the recordings in ``found`` had before (``existing``: parent → the ids of its
    :func:`made_segments` in the index) that this add did not write again (the recording is shorter now, cut
    otherwise, or short enough for one vector)."""
    written = {item.id for item, _ in entries}
    return sorted(sid for parent in found for sid in existing.get(parent, ()) if sid not in written)
