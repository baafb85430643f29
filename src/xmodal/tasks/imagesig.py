"""Image signatures for near-duplicate detection.

Two signals: the perceptual hash (pHash: the sign of the low DCT frequencies of a 32x32 grey image;
Zauner, "Implementation and benchmarking of perceptual image hash functions", 2010; the ``ImageHash``
package), cheap to compare over every pair, and an aligned thumbnail correlation that verifies a candidate
pair: the Pearson correlation of 24x24 grey thumbnails, maximised over the full image against 25 crops of
90% of the other's width and height (offsets on a 5x5 grid), so a copy cropped by up to 10% still lines up.
The hash finds candidates, the stored vectors find more, the correlation decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import MissingDependency

SIDE = 24
CROP_SCALE = 0.9
_STEPS = tuple((1 - CROP_SCALE) * i / 4 for i in range(5))  # a 5x5 grid of offsets: 0, 2.5%, ... 10%
BOXES: tuple[tuple[float, float, float, float] | None, ...] = (None,) + tuple(
    (x, y, x + CROP_SCALE, y + CROP_SCALE) for x in _STEPS for y in _STEPS
)
WORK_SIDE = 256  # images are shrunk to this before the signatures (both are computed far smaller)


@dataclass(frozen=True, slots=True)
class ImageSignature:
    """One image's pHash (64 bits) and its thumbnails: ``thumbs[0]`` the whole image, then the crops."""

    phash: int
    thumbs: np.ndarray  # float32 [len(BOXES), SIDE*SIDE], each zero-mean and unit-length (or zero when flat)


def _imagehash() -> object:
    try:
        import imagehash
    except ImportError as exc:
        raise MissingDependency("ImageHash", "tasks") from exc
    return imagehash


def _thumb(grey: Image.Image, box: tuple[float, float, float, float] | None) -> np.ndarray:
    if box is not None:
        w, h = grey.size
        grey = grey.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
    pixels = np.asarray(grey.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32).ravel()
    pixels = pixels - pixels.mean()
    norm = float(np.linalg.norm(pixels))
    out: np.ndarray = pixels / norm if norm > 1e-6 else np.zeros_like(pixels)
    return out


def signature(image: Image.Image) -> ImageSignature:
    """The signature of an RGB image."""
    small = image.copy()
    small.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    grey = small.convert("L")
    phash = int(str(_imagehash().phash(grey)), 16)  # type: ignore[attr-defined]
    return ImageSignature(phash, np.stack([_thumb(grey, box) for box in BOXES]))


def aligned_correlation(a: ImageSignature, b: ImageSignature) -> float:
    """The best correlation of either whole image with a crop of the other (1: the same picture)."""
    return float(max(np.max(a.thumbs @ b.thumbs[0]), np.max(b.thumbs @ a.thumbs[0])))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_pairs(hashes: np.ndarray, limit: int, block: int = 512) -> list[tuple[int, int, int]]:
    """Every pair (i < j) of 64-bit hashes at Hamming distance <= ``limit``, with the distance."""
    bytes_ = hashes.astype(np.uint64).view(np.uint8).reshape(len(hashes), 8)
    out: list[tuple[int, int, int]] = []
    for start in range(0, len(hashes), block):
        xor = bytes_[start : start + block, None, :] ^ bytes_[None, :, :]
        dist = _POPCOUNT[xor].sum(axis=2, dtype=np.int32)
        rows, cols = np.nonzero(dist <= limit)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + r < c:
                out.append((start + r, c, int(dist[r, c])))
    return out


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
