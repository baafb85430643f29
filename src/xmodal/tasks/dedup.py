"""``dedup``: groups of near-duplicate items, within and across modalities.

Images (of image items and products alike) pair by perceptual hash, aligned thumbnails and stored image
vectors, verified by matched correlation and, for the doubtful ones, by keypoints that line up under one
transform (:mod:`.dedup_images`, :mod:`.dedup_geometry`); texts (of text items and products alike) by
MinHash (:mod:`.dedup_text`); audio and video by the fingerprinters :mod:`xmodal.av` registers
(:mod:`.fingerprints`), files with files and segments with segments, a video's sound track with audio files
(:mod:`.dedup_sound`). Every pair joins its items' groups (union-find), so a product whose image copies an
image item and whose text copies an article ends up in one group with both. Each threshold is calibrated on
the collection (or given, or a stated default when there is too little to calibrate on) and listed in the
result with its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from ..records import Item
from . import dedup_images, dedup_text
from .calibrate import Threshold
from .data import check_positive, text_of
from .dedup_sound import sound_pairs
from .textsig import minhashes

if TYPE_CHECKING:
    from ..engine import Engine

SIGNALS = ("image", "text")


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    signal: str
    score: float


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Items that copy one another: ids in row order, their modalities, and the pairs that joined them."""

    ids: list[str]
    modalities: list[str]
    pairs: list[Pair]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "modalities": self.modalities,
            "pairs": [{"a": p.a, "b": p.b, "signal": p.signal, "score": round(p.score, 6)} for p in self.pairs],
        }


@dataclass(frozen=True, slots=True)
class Dedup:
    """The duplicate groups, the thresholds used, what was compared and what could not be."""

    groups: list[DuplicateGroup]
    thresholds: list[Threshold]
    compared: dict[str, int]  # items compared per signal
    skipped: dict[str, str] = field(default_factory=dict)  # item id -> why it was not compared
    unchecked: dict[str, str] = field(default_factory=dict)  # medium -> why no item's was compared

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "thresholds": [t.to_dict() for t in self.thresholds],
            "compared": self.compared,
            "skipped": self.skipped,
            "unchecked": self.unchecked,
        }


def dedup(
    engine: Engine,
    *,
    filters: Mapping[str, Any] | None = None,
    signals: tuple[str, ...] = SIGNALS,
    thresholds: Mapping[str, float] | None = None,
    calibration_sample: int = 64,
    neighbours: int = 10,
    seed: int = 0,
) -> Dedup:
    """Near-duplicate groups among the items that match ``filters`` (every item without).

    ``thresholds`` fixes any of ``correlation``, ``verified``, ``inliers``, ``thumbnail``, ``phash``, ``cosine``
    (images) and ``jaccard`` (text) instead of calibrating it on ``calibration_sample`` items; ``neighbours``: the
    aligned-thumbnail and stored-vector neighbours checked per image."""
    check_positive("neighbours", neighbours, "pass neighbours=10")
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown or not signals:
        raise ValidationError("signals", f"unknown signals {unknown}", f"use some of {', '.join(SIGNALS)}")
    given = _given(thresholds or {})
    items, vectors = _read(engine, filters)
    pairs: list[Pair] = []
    used: list[Threshold] = []
    compared: dict[str, int] = {}
    skipped: dict[str, str] = {}
    if "image" in signals:
        images = dedup_images.read_images(engine, items, vectors, skipped)
        compared["image"] = len(images.signatures)
        if images.signatures:
            found = dedup_images.calibrate(engine, images, calibration_sample, seed)
            found = {name: given.get(name, cut) for name, cut in found.items()}
            used += found.values()
            for a, b, score in dedup_images.image_pairs(engine, images, found, neighbours):
                pairs.append(Pair(images.ids[a], images.ids[b], "image", score))
    if "text" in signals:
        pairs += _text_pairs(items, calibration_sample, seed, given, used, compared)
    unchecked: dict[str, str] = {}
    pairs += _fingerprint_pairs(engine, items, given, used, compared, skipped, unchecked)
    return Dedup(_groups(items, pairs), used, compared, skipped, unchecked)


def _given(thresholds: Mapping[str, float]) -> dict[str, Threshold]:
    higher = {**dedup_images.HIGHER, "jaccard": True}
    out = {}
    for name, value in thresholds.items():
        if name not in higher and name not in ("audio", "video"):
            raise ValidationError(
                "thresholds", f"unknown threshold {name!r}", f"use some of {', '.join([*higher, 'audio', 'video'])}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"thresholds.{name}", f"must be a number, got {value!r}", "pass e.g. 0.9")
        out[name] = Threshold(name, float(value), higher.get(name, True), "given")
    return out


def _read(engine: Engine, filters: Mapping[str, Any] | None) -> tuple[list[Item], list[dict[str, Any]]]:
    allowed = engine.match_rows(filters, strict=True) if filters else None
    keep = None if allowed is None else set(allowed.tolist())
    items, vectors = [], []
    for stored in engine.iter_items():
        if keep is None or stored.row in keep:
            items.append(stored.item)
            vectors.append(stored.vectors)
    if not items:
        raise ValidationError("index", "no items to compare", "add items first, or loosen the filters")
    return items, vectors


def _text_pairs(
    items: list[Item],
    sample: int,
    seed: int,
    given: dict[str, Threshold],
    used: list[Threshold],
    compared: dict[str, int],
) -> list[Pair]:
    texts = [text_of(item) for item in items]
    where = dedup_text.usable(texts)
    compared["text"] = len(where)
    if len(where) < 2:
        return []
    chosen = [texts[i] for i in where]
    signatures = minhashes(chosen)
    cut = given.get("jaccard") or dedup_text.calibrate(chosen, signatures, sample, seed)
    used.append(cut)
    return [
        Pair(items[where[a]].id, items[where[b]].id, "text", s) for a, b, s in dedup_text.text_pairs(signatures, cut)
    ]


def _fingerprint_pairs(
    engine: Engine,
    items: list[Item],
    given: dict[str, Threshold],
    used: list[Threshold],
    compared: dict[str, int],
    skipped: dict[str, str],
    unchecked: dict[str, str],
) -> list[Pair]:
    """Pairs of recordings (files with files, segments with segments, a video's sound track with an audio
    file) by the registered fingerprinters (:mod:`.dedup_sound`)."""
    found = sound_pairs(engine, items, given, used, compared, skipped, unchecked)
    return [Pair(p.a, p.b, p.signal, p.score) for p in found]


def _groups(items: list[Item], pairs: list[Pair]) -> list[DuplicateGroup]:
    """Connected components of the pairs (union-find), in row order, largest first."""
    order = {item.id: i for i, item in enumerate(items)}
    parent = {item_id: item_id for p in pairs for item_id in (p.a, p.b)}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        ra, rb = root(p.a), root(p.b)
        if ra != rb:
            parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)
    members: dict[str, list[str]] = {}
    for item_id in sorted(parent, key=order.__getitem__):
        members.setdefault(root(item_id), []).append(item_id)
    by_root: dict[str, list[Pair]] = {}
    for p in pairs:
        by_root.setdefault(root(p.a), []).append(p)
    groups = [
        DuplicateGroup(ids, [str(items[order[i]].modality) for i in ids], by_root[r]) for r, ids in members.items()
    ]
    groups.sort(key=lambda g: (-len(g.ids), order[g.ids[0]]))
    return groups
