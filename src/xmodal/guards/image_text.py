"""Text rendered inside a query image, read so that the query guard checks it like query text (issue 17,
part 2): a query image saying "ignore previous instructions…" is flagged or blocked by the same policy.

Reading is bounded, so that an image query without text costs next to nothing:

1. a cheap text-presence check (:func:`may_hold_text`, a few milliseconds): the image, grey and at most
   :data:`CHECK_SIDE` pixels on its long side, is cut into tiles; text makes some tile dense in strong
   horizontal contrast steps (strokes) over one dominant background tone, which smooth photos, noise and
   fine textures do not. No such tile: no OCR;
2. otherwise OCR with Debian's tesseract (:func:`xmodal.splitters.ocr.ocr_image`, the one the page splitter
   uses) on the image downscaled to at most :data:`OCR_SIDE` pixels, page segmentation "sparse text"
   (text anywhere, no layout), with a :data:`TIMEOUT_S` limit;
3. the text read per distinct image is kept (an LRU of :data:`CACHE` entries), so a repeated query image
   is read once.

A failing OCR (tesseract missing, a timeout, a crash) is not an error of the search: the status says
``not checked: <why>``, it is logged, and the search goes on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..splitters.ocr import OcrError, ocr_image

log = logging.getLogger(__name__)
CHECK_SIDE = 768
TILE = 32  # tiles across the check image (each at least MIN_TILE pixels a side)
MIN_TILE = 8
STEP = 48  # a grey-level step this large between neighbours is a stroke edge
TILE_DENSITY = 0.2  # a tile this dense in stroke edges may hold text …
BACKGROUND = 0.3  # … when this share of it is one grey band (the background text is written on)
OCR_SIDE = 1600
TIMEOUT_S = 10.0
CACHE = 256
SPARSE_TEXT = 11  # tesseract --psm 11: find as much text as possible, in no particular order


@dataclass(frozen=True, slots=True)
class ImageText:
    """What was read in a query image: ``status`` is ``checked`` (``text`` holds what OCR read),
    ``skipped: …`` (the cheap check saw no text) or ``not checked: …`` (OCR failed); ``ms`` its cost."""

    status: str
    text: str
    ms: float


def may_hold_text(image: Image.Image) -> bool:
    """Whether some tile of the image looks like text: dense in strong horizontal contrast steps (strokes)
    over a dominant background tone (most of the tile in one of 16 grey bands). Smooth photos lack the steps;
    noise and fine texture lack the background."""
    gray = image.convert("L")
    gray.thumbnail((CHECK_SIDE, CHECK_SIDE))
    pixels = np.asarray(gray, dtype=np.int16)
    if pixels.shape[0] < 8 or pixels.shape[1] < 8:
        return False
    steps = np.abs(np.diff(pixels, axis=1)) >= STEP
    bands = pixels[:, 1:] // 16
    h, w = steps.shape
    th, tw = max(MIN_TILE, h // TILE), max(MIN_TILE, w // TILE)
    nh, nw = h // th, w // tw
    tiles = steps[: nh * th, : nw * tw].reshape(nh, th, nw, tw)
    dense = tiles.mean(axis=(1, 3)) >= TILE_DENSITY
    if not dense.any():
        return False
    tones = bands[: nh * th, : nw * tw].reshape(nh, th, nw, tw).transpose(0, 2, 1, 3).reshape(nh, nw, th * tw)
    counts = (tones[dense][:, :, None] == np.arange(16)).sum(axis=1)  # [dense tiles, 16 bands]
    return bool((counts.max(axis=1) >= BACKGROUND * th * tw).any())


class ImageReader:
    """Reads the text of query images, bounded and cached (see the module notes); thread-safe."""

    def __init__(self, capacity: int = CACHE) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, image: Image.Image, key: bytes | None = None) -> ImageText:
        """The text in ``image`` (``key``: its bytes, for the cache; else its pixels are hashed)."""
        start = time.perf_counter()
        digest = hashlib.sha1(key if key is not None else image.tobytes()).hexdigest()
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return ImageText("checked", self._cache[digest], _ms(start))
        if not may_hold_text(image):
            return ImageText("skipped: no text found by the cheap check", "", _ms(start))
        small = image.copy()
        small.thumbnail((OCR_SIDE, OCR_SIDE))
        try:
            text = ocr_image(small, timeout=TIMEOUT_S, psm=SPARSE_TEXT)
        except OcrError as exc:
            log.warning("guards: the text of a query image was not checked: %s", exc)
            return ImageText(f"not checked: {exc}", "", _ms(start))
        text = " ".join(text.split())
        with self._lock:
            self._cache[digest] = text
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return ImageText("checked", text, _ms(start))


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
