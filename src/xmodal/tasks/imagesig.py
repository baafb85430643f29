"""Image signatures for near-duplicate detection.

Three signals. The perceptual hash (pHash: the sign of the low DCT frequencies of a 32x32 grey image;
Zauner, "Implementation and benchmarking of perceptual image hash functions", 2010; the ``ImageHash``
package), cheap to compare over every pair. An aligned thumbnail correlation: the Pearson correlation of
24x24 grey thumbnails, maximised over the full image against 25 crops of 90% of the other's width and
height (offsets on a 5x5 grid), cheap enough to rank every pair by a matrix product, so a copy cropped by up
to 10% is still a candidate where its hash moved. And the matched correlation that decides a candidate pair:
normalised cross-correlation (template matching) of one image's blurred 64x64 grey picture, scaled to 88-92%
(and 100%), at every whole-pixel offset inside the other's. The 5x5 grid lines a crop up only to within 1.25%
of the width, which on textured photos costs as much correlation as a different picture has (a crop's
aligned correlation fell to 0.90 where unrelated images reach 0.92); at every offset it stays above 0.95.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from ..errors import MissingDependency

SIDE = 24
CROP_SCALE = 0.9
_STEPS = tuple((1 - CROP_SCALE) * i / 4 for i in range(5))  # a 5x5 grid of offsets: 0, 2.5%, ... 10%
BOXES: tuple[tuple[float, float, float, float] | None, ...] = (None,) + tuple(
    (x, y, x + CROP_SCALE, y + CROP_SCALE) for x in _STEPS for y in _STEPS
)
WORK_SIDE = 256  # images are shrunk to this before the signatures (both are computed far smaller)
GREY_SIDE = 64  # the matched correlation's picture
BLUR = 1.0  # its Gaussian blur radius, in pixels: resampling differences are finer than this
SCALES = (0.88, 0.9, 0.92)  # how large a crop of the other image may be, as a share of its side
FLAT = 1.0  # grey levels: a picture whose standard deviation is below this has nothing to match


@dataclass(frozen=True, slots=True)
class ImageSignature:
    """One image's pHash (64 bits), its thumbnails (``thumbs[0]`` the whole image, then the crops) and its
    blurred grey picture for the matched correlation."""

    phash: int
    thumbs: np.ndarray  # float32 [len(BOXES), SIDE*SIDE], each zero-mean and unit-length (or zero when flat)
    grey: np.ndarray  # float32 [GREY_SIDE, GREY_SIDE], 0-255


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
    picture = grey.resize((GREY_SIDE, GREY_SIDE), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(BLUR))
    return ImageSignature(phash, np.stack([_thumb(grey, box) for box in BOXES]), np.asarray(picture, dtype=np.float32))


def aligned_correlation(a: ImageSignature, b: ImageSignature) -> float:
    """The best correlation of either whole image with a crop of the other (1: the same picture)."""
    return float(max(np.max(a.thumbs @ b.thumbs[0]), np.max(b.thumbs @ a.thumbs[0])))


def matched_correlation(a: ImageSignature, b: ImageSignature) -> float:
    """The best normalised cross-correlation (OpenCV's ``matchTemplate``, TM_CCOEFF_NORMED) of the two
    pictures whole, or of either one scaled to each of ``SCALES`` at any offset inside the other (1: the same
    picture; 0 when either is flat)."""
    if float(a.grey.std()) < FLAT or float(b.grey.std()) < FLAT:
        return 0.0
    cv2 = opencv()
    best = float(cv2.matchTemplate(a.grey, b.grey, cv2.TM_CCOEFF_NORMED).max())
    for scale in SCALES:
        side = round(GREY_SIDE * scale)
        for image, other in ((a.grey, b.grey), (b.grey, a.grey)):
            template = cv2.resize(other, (side, side), interpolation=cv2.INTER_AREA)
            best = max(best, float(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED).max()))
    return min(best, 1.0)


def opencv() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependency("opencv-python", "tasks") from exc
    return cv2


def aligned_pairs(
    signatures: list[ImageSignature], limit: float, neighbours: int, block: int = 256
) -> set[tuple[int, int]]:
    """Pairs (i < j) among each image's ``neighbours`` best aligned correlations at or above ``limit``: matrix
    products of every whole thumbnail with every crop thumbnail, in blocks of rows (memory: a block by n)."""
    n, per = len(signatures), len(BOXES)
    if n < 2:
        return set()
    wholes = np.stack([s.thumbs[0] for s in signatures])
    crops = np.stack([s.thumbs for s in signatures])  # [n, len(BOXES), SIDE*SIDE]
    flat = crops.reshape(n * per, -1)
    keep = min(neighbours, n - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, block):
        rows = range(start, min(n, start + block))
        mine_whole = (wholes[start : rows.stop] @ flat.T).reshape(len(rows), n, per).max(axis=2)
        mine_crops = np.einsum("rcd,nd->rnc", crops[start : rows.stop], wholes).max(axis=2)
        aligned = np.maximum(mine_whole, mine_crops)
        aligned[np.arange(len(rows)), np.asarray(rows)] = -np.inf
        nearest = np.argpartition(-aligned, keep - 1, axis=1)[:, :keep]
        for r, a in enumerate(rows):
            for b in nearest[r].tolist():
                if aligned[r, b] >= limit:
                    pairs.add((min(a, b), max(a, b)))
    return pairs


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
