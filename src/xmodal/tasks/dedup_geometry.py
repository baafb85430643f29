"""Geometric verification of a candidate duplicate image pair: a second judgement, independent of the
correlation of the two pictures.

ORB keypoints (Rublee et al., "ORB: an efficient alternative to SIFT or SURF", ICCV 2011) of each image,
matched by Hamming distance with Lowe's ratio test ("Distinctive image features from scale-invariant
keypoints", 2004), and a similarity transform (rotation, one uniform scale, translation) fitted to the
matches by RANSAC (Fischler and Bolles, 1981), as copy-detection systems verify their candidates. A copy —
resized, re-compressed or cropped — keeps many keypoints in one consistent transform close to the identity
(scale 1, or about 1.1 for a 10% crop, once both images are brought to one size); two different drawings of
one kind (two spirographs, two rosettes) correlate like copies when blurred, but their keypoints do not line
up under any one such transform.

Both images are shrunk or enlarged to ``SIDE`` pixels on their longer side (a half-size copy then meets its
source at scale 1, and a small image still has room for keypoints) and their grey levels stretched between
the 1st and 99th percentiles, so low-contrast photos still give keypoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .imagesig import opencv

SIDE = 256  # pixels on the longer side where keypoints are found
FEATURES = 500  # keypoints kept per image (ORB's strongest)
FAST_THRESHOLD = 2  # low: stretched, blurred pictures (enlarged copies) have weak corners
RATIO = 0.8  # Lowe's ratio test: a match must be clearly better than the second best
REPROJECTION = 3.0  # pixels (at SIDE): a match farther than this from the fitted transform is an outlier
MIN_INLIERS = 12  # consistent matches a copy keeps (copies keep tens to hundreds; different images rarely 10)
SCALE_RANGE = (0.75, 1.34)  # a copy's scale, after both images are brought to SIDE: crops up to 25% of a side
MAX_ROTATION = 5.0  # degrees: copies are not turned
#: degrees: a match's two keypoints must point the same way (ORB orients each); a copy is not turned, and a
#: symmetric drawing's keypoints otherwise match their turned twins
MAX_TURN = 20.0
#: keypoints each image of a pair must have for a failed verification to mean "not a copy": with fewer
#: (flat clip-art, a dark photo) a copy may not line up either, and the correlation alone decides
INFORMED = 400  # 80% of FEATURES
SEED = 0  # RANSAC's random samples, seeded: the same pair always gets the same answer


@dataclass(frozen=True, slots=True)
class Keypoints:
    """One image's keypoints: positions [n, 2] (at ``SIDE``), orientations [n] in degrees and their ORB
    descriptors [n, 32] bytes."""

    points: np.ndarray
    angles: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True, slots=True)
class Transform:
    """The best transform between two images' keypoints: how many of the ``matches`` agree with it, its scale
    and its rotation in degrees (zero inliers when too few matches were found to fit one)."""

    inliers: int
    scale: float
    rotation: float
    matches: int

    def is_copy(self, min_inliers: float = MIN_INLIERS) -> bool:
        """Enough consistent matches under a near-identity transform (scale in ``SCALE_RANGE``, not turned)."""
        low, high = SCALE_RANGE
        return self.inliers >= min_inliers and low <= self.scale <= high and abs(self.rotation) <= MAX_ROTATION


def verdict(a: Keypoints, b: Keypoints, min_inliers: float = MIN_INLIERS) -> bool | None:
    """True: the images line up as a copy; False: both are rich in keypoints (``INFORMED``) and yet they do
    not; None: too few keypoints to tell."""
    if transform(a, b).is_copy(min_inliers):
        return True
    return False if min(len(a.points), len(b.points)) >= INFORMED else None


def _picture(image: Image.Image) -> np.ndarray:
    grey = image.convert("L")
    w, h = grey.size
    factor = SIDE / max(w, h)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    method = Image.Resampling.BICUBIC if factor > 1 else Image.Resampling.BOX
    pixels = np.asarray(grey.resize(size, method), dtype=np.float32)
    low, high = np.percentile(pixels, [1, 99])
    stretched = (pixels - low) * (255.0 / max(1.0, float(high - low)))
    out: np.ndarray = np.clip(stretched, 0, 255).astype(np.uint8)
    return out


def keypoints(image: Image.Image) -> Keypoints:
    """The ORB keypoints of an image (none for a flat one)."""
    cv2 = opencv()
    orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=FAST_THRESHOLD)
    found, descriptors = orb.detectAndCompute(_picture(image), None)
    if descriptors is None:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 32), np.uint8))
    points = np.asarray([k.pt for k in found], dtype=np.float32)
    return Keypoints(points, np.asarray([k.angle for k in found], dtype=np.float32), descriptors)


def transform(a: Keypoints, b: Keypoints) -> Transform:
    """The similarity transform from ``a``'s keypoints to ``b``'s that most ratio-tested matches agree with."""
    if len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return Transform(0, 0.0, 0.0, 0)
    cv2 = opencv()
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = _unturned([p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance], a, b)
    if len(good) < 3:
        return Transform(0, 0.0, 0.0, len(good))
    source = a.points[[q for q, _ in good]]
    target = b.points[[t for _, t in good]]
    cv2.setRNGSeed(SEED)
    matrix, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION, maxIters=2000, confidence=0.995
    )
    if matrix is None:
        return Transform(0, 0.0, 0.0, len(good))
    scale = math.hypot(float(matrix[0, 0]), float(matrix[1, 0]))
    rotation = math.degrees(math.atan2(float(matrix[1, 0]), float(matrix[0, 0])))
    return Transform(int(mask.sum()), scale, rotation, len(good))


def _unturned(matches: list[Any], a: Keypoints, b: Keypoints) -> list[tuple[int, int]]:
    """The matches (``a``'s keypoint, ``b``'s) whose keypoints point the same way, one per keypoint of ``b``
    (the closest): many of ``a``'s keypoints on one of ``b``'s would let RANSAC fit a collapsed transform."""
    best: dict[int, Any] = {}
    for m in matches:
        turn = abs(float(a.angles[m.queryIdx]) - float(b.angles[m.trainIdx])) % 360.0
        if min(turn, 360.0 - turn) <= MAX_TURN and (m.trainIdx not in best or m.distance < best[m.trainIdx].distance):
            best[m.trainIdx] = m
    return [(m.queryIdx, t) for t, m in sorted(best.items())]
