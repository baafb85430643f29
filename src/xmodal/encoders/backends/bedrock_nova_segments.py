"""A long recording indexed as xmodal segments from Nova's asynchronous segmented embeddings.

:func:`add_recording` asks the index's ``bedrock-nova`` encoder for every segment of an audio or video file
(:meth:`~.bedrock_nova.BedrockNovaEncoder.segments`: one ``StartAsyncInvoke`` job), then adds the recording
as a parent item (its vector the renormalised mean of its segments') and one segment item per time range
(``parent`` and ``span`` of start and end seconds, id ``parent#t<start>``, the recording as its media so a hit
plays from its start), each with the vector Nova made for it: no second request per segment. The ordinary
add path does the same for a recording longer than 30 s (:mod:`xmodal.ingest.recordings`); this function
also segments a shorter one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ...errors import ConfigError
from ...records import Item, Span
from ...splitters import segment_id, span_label
from ..base import SegmentVector
from .bedrock_nova_async import mean_vector


class _Segmenting(Protocol):
    name: str

    def segments(self, path: str | Path, medium: str) -> list[SegmentVector]: ...


class _Adding(Protocol):
    encoder: Any

    def add(self, items: Any, *, vectors: Mapping[str, Any] | None = None) -> Any: ...


def recording_items(
    item_id: str,
    path: str | Path,
    medium: str,
    segments: list[SegmentVector],
    *,
    title: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> tuple[list[Item], dict[str, dict[str, Any]]]:
    """The parent item and its segment items for ``segments`` of the recording at ``path``, with their vectors
    (``{id: {medium: vector}}``) for :meth:`xmodal.Engine.add`."""
    name = title or Path(path).stem
    attrs = {**(attributes or {}), "segments": len(segments)}
    if segments:
        attrs.setdefault("duration", max(s.end for s in segments))
    parent = Item.create(item_id, title=name, attributes=attrs, media={medium: str(path)})
    mean = mean_vector([s.vector for s in segments])
    items, vectors = [parent], {item_id: {medium: mean}}
    for seg in segments:
        span = Span(start=seg.start, end=seg.end)
        sid = segment_id(item_id, span)
        items.append(
            Item.create(
                sid,
                title=f"{name} — {span_label(span)}",
                attributes={"segment": seg.index},
                media={medium: str(path)},
                parent=item_id,
                span=span,
            )
        )
        vectors[sid] = {medium: seg.vector}
    return items, vectors


def add_recording(
    engine: _Adding,
    item_id: str,
    path: str | Path,
    medium: str = "audio",
    *,
    title: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Embed the recording at ``path`` through Nova's asynchronous API and add it with its segments to
    ``engine`` (whose encoder must be ``bedrock-nova``); the engine's add report."""
    encoder = engine.encoder
    if not callable(getattr(encoder, "segments", None)):
        raise ConfigError(
            f"add_recording needs an index whose encoder is bedrock-nova (this one's is "
            f"{getattr(encoder, 'name', encoder)!r}); use xmodal add with the audio/video splitter instead"
        )
    segments = encoder.segments(path, medium)
    items, vectors = recording_items(item_id, path, medium, segments, title=title, attributes=attributes)
    return engine.add(items, vectors=vectors)
