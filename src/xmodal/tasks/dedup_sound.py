"""Pairs of recordings by the registered fingerprinters (:mod:`.fingerprints`), within and across media.

Every item carrying a medium that has a fingerprinter (``audio``, ``video``; not ``image``) is compared
with every other such item it shares a fingerprinted medium with: a video and an audio file share
``audio`` when the video's sound track is kept as its ``audio`` medium (:mod:`xmodal.av.splitter`), so a
video whose sound copies a song pairs with it under the ``audio`` signal; two videos pair under ``video``
(the most specific medium they share; ``audio`` is the most general). Files are compared with files and
segments with segments (duplicate segments: the same stretch of sound in two recordings); an item is never
paired with its own parent, nor two segments of one parent (overlapping windows of one file). Every pair of
fingerprints is compared: O(n²) in the recordings and segments compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import XmodalError
from ..records import Item
from .calibrate import Threshold
from .fingerprints import Fingerprinter, StoredFingerprints, fingerprinters

if TYPE_CHECKING:
    from ..engine import Engine

GENERAL = "audio"  #: the medium every recording with sound shares: the last one a pair is judged by


@dataclass(frozen=True, slots=True)
class SoundPair:
    a: str
    b: str
    signal: str
    score: float


def _order(medium: str) -> tuple[bool, str]:
    return (medium == GENERAL, medium)


def sound_pairs(
    engine: Engine,
    items: list[Item],
    given: Mapping[str, Threshold],
    used: list[Threshold],
    compared: dict[str, int],
    skipped: dict[str, str],
    unchecked: dict[str, str],
) -> list[SoundPair]:
    """The pairs (see the module's docstring); the thresholds used go to ``used``, the items compared per
    medium to ``compared``, an item that could not be fingerprinted to ``skipped`` and a medium without a
    fingerprinter to ``unchecked``."""
    present = sorted({name for item in items for name in item.media} - {"image"}, key=_order)
    registered = fingerprinters() if present else {}
    cuts: dict[str, Threshold] = {}
    for medium in present:
        printer = registered.get(medium)
        if printer is None:
            unchecked[medium] = "no fingerprinter is registered for it (xmodal.av registers audio and video ones)"
            continue
        cuts[medium] = given.get(medium) or Threshold(medium, printer.default_threshold, True, "default")
        used.append(cuts[medium])
    prints: dict[str, dict[str, Any]] = {}  # item id -> medium -> fingerprint
    for item in items:
        for medium in sorted(set(item.media) & set(cuts), key=_order):
            found = _print(engine, item, medium, registered[medium], skipped)
            if found is not None:
                prints.setdefault(item.id, {})[medium] = found
                compared[medium] = compared.get(medium, 0) + 1
    for medium in cuts:
        compared.setdefault(medium, 0)
    kept = [item for item in items if item.id in prints]
    pairs: list[SoundPair] = []
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            if not _comparable(a, b):
                continue
            shared = sorted(set(prints[a.id]) & set(prints[b.id]), key=_order)
            if not shared:
                continue
            medium = shared[0]
            score = registered[medium].similarity(prints[a.id][medium], prints[b.id][medium])
            if cuts[medium].passes(score):
                pairs.append(SoundPair(a.id, b.id, medium, score))
    return pairs


def _comparable(a: Item, b: Item) -> bool:
    """Files with files, segments with segments of other files; never an item and its own parent."""
    if (a.parent is None) != (b.parent is None):
        return False
    return a.parent is None or a.parent != b.parent


def _print(engine: Engine, item: Item, medium: str, printer: Fingerprinter, skipped: dict[str, str]) -> Any | None:
    """The item's fingerprint of ``medium``: the one its splitter kept, else one made from the bytes."""
    stored = printer.from_attributes(item.attributes) if isinstance(printer, StoredFingerprints) else None
    if stored is not None:
        return stored
    ref = item.media[medium]
    try:
        data = ref if isinstance(ref, bytes) else engine.media.path(ref).read_bytes()
        return printer.fingerprint(data)
    except (XmodalError, OSError) as exc:
        skipped[item.id] = f"{medium} not fingerprinted: {exc}"
        return None
