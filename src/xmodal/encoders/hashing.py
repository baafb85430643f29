"""A deterministic hashing encoder: no model, no randomness across runs; for unit tests and smoke runs.

Text: signed feature hashing of lower-cased words and character trigrams (Weinberger et al.,
"Feature Hashing for Large Scale Multitask Learning", ICML 2009). Images: a 8×8×3 thumbnail
projected by a fixed seeded Gaussian matrix, so similar images get similar vectors.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from . import identity
from .base import BaseEncoder, Purpose, Vectors

_WORD = re.compile(r"\w+", re.UNICODE)
ALGORITHM = "blake2b-words-trigrams/gaussian-8x8x3-1"  # bump when the vectors of the same parameters change


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


class HashingEncoder(BaseEncoder):
    """Feature-hashing text vectors and random-projection image vectors in one space."""

    name = "hashing"
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

    def __init__(self, dim: int | None = None, native_dim: int = 384, seed: int = 0) -> None:
        self.native_dim = native_dim
        super().__init__(dim)
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((8 * 8 * 3, native_dim)).astype(np.float32)

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        out = np.zeros((len(texts), self.native_dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for word in words:
                col, sign = _bucket("w:" + word, self.native_dim)
                out[row, col] += sign
                padded = f"#{word}#"
                for i in range(len(padded) - 2):
                    col, sign = _bucket("c:" + padded[i : i + 3], self.native_dim)
                    out[row, col] += 0.25 * sign
        return out

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        thumbs = [
            np.asarray(im.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
            for im in images
        ]
        flat = np.stack(thumbs).reshape(len(images), -1)
        out: Vectors = ((flat - 0.5) @ self._projection).astype(np.float32)
        return out

    def config(self) -> dict[str, object]:
        ident = identity.of_parameters(
            "feature hashing", {"algorithm": ALGORITHM, "native_dim": self.native_dim, "seed": self.seed}
        )
        return {
            "name": self.name,
            "dim": self.dim,
            "native_dim": self.native_dim,
            "seed": self.seed,
            identity.IDENTITY: ident,
        }
