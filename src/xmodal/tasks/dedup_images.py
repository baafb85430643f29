"""Near-duplicate image pairs: pHash, aligned-thumbnail and stored-vector candidates, verified by matched
correlation (:mod:`.imagesig`), each threshold calibrated on transformed copies of the collection's own images
(:mod:`.calibrate`).

A pair is a duplicate when its matched correlation reaches the looser ``verified`` cut (the one that keeps
99% of the calibration copies) and the two images' keypoints line up under one near-identity transform
(:mod:`.dedup_geometry`, at least ``inliers`` consistent matches), or, when the images have too few keypoints
to tell (flat clip-art), when it reaches the calibrated ``correlation`` cut. The correlation alone cannot tell
a crop of a textured photo (0.95-0.97) from two fine-line drawings of one kind (two spirographs: 0.95-0.99);
the keypoints can. Keypoints are found only for the images of pairs above the looser cut."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import XmodalError
from ..imaging import decode_image
from ..records import Item, Query
from .calibrate import SET_ASIDE_QUANTILE, Threshold, best_threshold, image_variants, recall_threshold
from .dedup_geometry import MIN_INLIERS, Keypoints, keypoints, verdict
from .imagesig import (
    ImageSignature,
    aligned_correlation,
    aligned_pairs,
    hamming,
    hamming_pairs,
    matched_correlation,
    signature,
)

if TYPE_CHECKING:
    from ..engine import Engine

CANDIDATE_RECALL = 0.99  # the share of calibration copies each candidate filter must keep
MAX_HASH_LIMIT = 24  # bits: above this a pHash pair is noise (and the candidate list explodes)
#: when the collection is too small to calibrate
DEFAULTS = {
    "correlation": 0.95,
    "verified": 0.93,  # with at least ``inliers`` keypoints in one near-identity transform
    "inliers": float(MIN_INLIERS),
    "thumbnail": 0.85,
    "phash": 10.0,
    "cosine": 0.95,
}
#: which way each signal points
HIGHER = {"correlation": True, "verified": True, "inliers": True, "thumbnail": True, "phash": False, "cosine": True}
MIN_CALIBRATION = 8  # images needed to calibrate
NEGATIVES = 5  # calibration negatives per sampled image: its most similar others


@dataclass(frozen=True, slots=True)
class ImageSet:
    """The images read: positions in the task's items, the items, signatures, and one vector each (None: no
    vector)."""

    where: list[int]
    items: list[Item]
    ids: list[str]
    signatures: list[ImageSignature]
    vectors: np.ndarray | None  # [n, d] unit rows, of ``kind``
    kind: str | None

    @property
    def wholes(self) -> np.ndarray:
        """The whole-image thumbnails [n, SIDE*SIDE]."""
        return np.stack([s.thumbs[0] for s in self.signatures])


def image_bytes(engine: Engine, item: Item) -> bytes:
    ref = item.media["image"]
    return ref if isinstance(ref, bytes) else engine.media.path(ref).read_bytes()


def read_images(
    engine: Engine, items: Sequence[Item], vectors: Sequence[dict[str, np.ndarray]], skipped: dict[str, str]
) -> ImageSet:
    """Signatures of every item with an image (an unreadable one goes to ``skipped`` with the reason)."""
    where, sigs, vecs = [], [], []
    kind = "image" if any("image" in v for v in vectors) else None
    for i, item in enumerate(items):
        if "image" not in item.media:
            continue
        try:
            sigs.append(signature(decode_image(image_bytes(engine, item), item=item.id)))
        except (XmodalError, OSError) as exc:
            skipped[item.id] = f"image not read: {exc}"
            continue
        where.append(i)
        if kind is not None:
            vecs.append(vectors[i].get(kind))
    have_all = kind is not None and all(v is not None for v in vecs)
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vecs]) if have_all and vecs else None
    chosen = [items[i] for i in where]
    return ImageSet(where, chosen, [item.id for item in chosen], sigs, matrix, kind if matrix is not None else None)


def calibrate(engine: Engine, images: ImageSet, sample: int, seed: int) -> dict[str, Threshold]:
    """Thresholds of the signals from copies of a seeded sample of the images (``inliers``: a stated default)."""
    n = len(images.signatures)
    if n < MIN_CALIBRATION or sample < 1:
        return {name: Threshold(name, v, HIGHER[name], "default") for name, v in DEFAULTS.items()}
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(n, size=min(n, sample), replace=False).tolist())
    hashes = np.asarray([s.phash for s in images.signatures], dtype=np.uint64)
    wholes = images.wholes
    pos: dict[str, list[float]] = {name: [] for name in DEFAULTS}
    neg: dict[str, list[float]] = {name: [] for name in DEFAULTS}
    for j in chosen:
        original = decode_image(image_bytes(engine, images.items[j]))
        copies = [copy for _, copy in image_variants(original, rng)]
        for copy in copies:
            sig = signature(copy)
            pos["correlation"].append(matched_correlation(images.signatures[j], sig))
            pos["thumbnail"].append(aligned_correlation(images.signatures[j], sig))
            pos["phash"].append(float(hamming(images.signatures[j].phash, sig.phash)))
        if images.vectors is not None:
            encoded = engine.encode_queries([Query(image=_png(copy)) for copy in copies])
            pos["cosine"] += (encoded @ images.vectors[j]).tolist()
    like_copies = float(np.quantile(pos["correlation"], SET_ASIDE_QUANTILE))
    for j in chosen:
        _negatives(images, hashes, wholes, j, neg, like_copies)
    found = {
        "correlation": best_threshold("correlation", pos["correlation"], neg["correlation"]),
        "verified": recall_threshold(
            "verified", pos["correlation"], neg["correlation"], higher=True, recall=CANDIDATE_RECALL
        ),
        "inliers": Threshold("inliers", DEFAULTS["inliers"], True, "default"),
        "thumbnail": recall_threshold(
            "thumbnail", pos["thumbnail"], neg["thumbnail"], higher=True, recall=CANDIDATE_RECALL
        ),
        "phash": recall_threshold("phash", pos["phash"], neg["phash"], higher=False, recall=CANDIDATE_RECALL),
    }
    if found["phash"].value > MAX_HASH_LIMIT:
        found["phash"] = Threshold("phash", MAX_HASH_LIMIT, False, "default")
    if images.vectors is not None:
        found["cosine"] = recall_threshold("cosine", pos["cosine"], neg["cosine"], higher=True, recall=CANDIDATE_RECALL)
    return found


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _negatives(
    images: ImageSet, hashes: np.ndarray, wholes: np.ndarray, j: int, neg: dict[str, list[float]], like_copies: float
) -> None:
    """Image ``j`` against its most similar other images: the nearest by hash and by cosine, and its
    ``NEGATIVES`` highest aligned and matched correlations among the nearest by whole-image thumbnail.

    A neighbour that matches one of ``j``'s copies in the collection (a matched correlation of at least
    ``like_copies`` with ``j``) as well as a copy would is a copy too (two copies of one source match each
    other less than either matches the source): it is left out, not taken as a different image."""
    distances = np.asarray([hamming(int(hashes[j]), int(h)) for h in hashes.tolist()], dtype=np.float64)
    distances[j] = np.inf
    neg["phash"].append(float(distances.min()))
    if images.vectors is not None:
        sims = images.vectors @ images.vectors[j]
        sims[j] = -np.inf
        neg["cosine"].append(float(sims.max()))
    whole = wholes @ images.signatures[j].thumbs[0]
    whole[j] = -np.inf
    near = np.argsort(-whole, kind="stable")[: 2 * NEGATIVES].tolist()
    mine = images.signatures[j]
    aligned = sorted((aligned_correlation(mine, images.signatures[o]) for o in near), reverse=True)
    neg["thumbnail"] += aligned[:NEGATIVES]
    matched = {o: matched_correlation(mine, images.signatures[o]) for o in near}
    copies = [o for o, score in matched.items() if score >= like_copies]
    different = [
        score
        for o, score in matched.items()
        if o in copies
        or not any(matched_correlation(images.signatures[o], images.signatures[c]) >= like_copies for c in copies)
    ]
    neg["correlation"] += sorted(different, reverse=True)[:NEGATIVES]


def image_pairs(
    engine: Engine, images: ImageSet, thresholds: dict[str, Threshold], neighbours: int
) -> list[tuple[int, int, float]]:
    """Verified duplicate pairs (positions in ``images``) with their matched correlation."""
    hashes = np.asarray([s.phash for s in images.signatures], dtype=np.uint64)
    candidates = {(a, b) for a, b, _ in hamming_pairs(hashes, int(thresholds["phash"].value))}
    if "thumbnail" in thresholds:
        candidates |= aligned_pairs(images.signatures, thresholds["thumbnail"].value, neighbours)
    if images.vectors is not None and "cosine" in thresholds and images.kind is not None:
        candidates |= _vector_candidates(engine, images, thresholds["cosine"], neighbours)
    out = []
    found: dict[int, Keypoints] = {}
    for a, b in sorted(candidates):
        score = matched_correlation(images.signatures[a], images.signatures[b])
        if not (thresholds["verified"].passes(score) or thresholds["correlation"].passes(score)):
            continue
        copy = _verdict(engine, images, a, b, thresholds["inliers"], found)
        if copy or (copy is None and thresholds["correlation"].passes(score)):
            out.append((a, b, score))
    return out


def _verdict(
    engine: Engine, images: ImageSet, a: int, b: int, inliers: Threshold, found: dict[int, Keypoints]
) -> bool | None:
    """Whether images ``a`` and ``b`` line up as copies (None: too few keypoints to tell); each image's
    keypoints are found once, and only for images in pairs above the looser cut."""
    for p in (a, b):
        if p not in found:
            found[p] = keypoints(decode_image(image_bytes(engine, images.items[p]), item=images.ids[p]))
    return verdict(found[a], found[b], inliers.value)


def _vector_candidates(engine: Engine, images: ImageSet, cut: Threshold, neighbours: int) -> set[tuple[int, int]]:
    """Pairs among each image's ``neighbours`` nearest image vectors (the engine's index) above the cosine cut."""
    assert images.vectors is not None and images.kind is not None
    position = {item_id: p for p, item_id in enumerate(images.ids)}
    pairs: set[tuple[int, int]] = set()
    found = engine.search_vectors(images.vectors, k=neighbours + 1, target=images.kind)
    for a, hits in enumerate(found):
        for hit_id, score in zip(hits.ids.tolist(), hits.scores.tolist(), strict=True):
            b = position.get(hit_id)
            if b is not None and b != a and cut.passes(float(score)):
                pairs.add((min(a, b), max(a, b)))
    return pairs
