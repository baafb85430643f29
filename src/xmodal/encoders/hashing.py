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
WORD_CACHE = 100_000  # words whose hashed features are kept per encoder (a few MB)


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if (value >> 63) & 1 else -1.0


def _code(token: str, dim: int) -> int:
    """A token's bucket and sign as one number: ``2 * column + 1`` when the sign is +, ``2 * column`` when -."""
    col, sign = _bucket(token, dim)
    return 2 * col + (sign > 0)


def _word_features(word: str, dim: int) -> tuple[int, tuple[int, ...]]:
    """The coded features of one word: the word's own and those of its character trigrams (``#`` at each end)."""
    padded = f"#{word}#"
    return _code("w:" + word, dim), tuple(_code("c:" + padded[i : i + 3], dim) for i in range(len(padded) - 2))


def _summed(codes: list[int], sizes: list[int], dim: int) -> np.ndarray:
    """Each text's signed feature counts (``sizes[i]`` codes per text, in order), ``len(sizes) × dim``."""
    code = np.asarray(codes, dtype=np.int64)
    at = np.repeat(np.arange(len(sizes), dtype=np.int64) * dim, sizes) + (code >> 1)
    return np.bincount(at, weights=(code & 1) * 2.0 - 1.0, minlength=len(sizes) * dim).reshape(len(sizes), dim)


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
        self._words: dict[str, tuple[int, tuple[int, ...]]] = {}  # word -> its coded features (_word_features)

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        """Per text: +-1 per word and +-0.25 per character trigram in the token's bucket. Each word's buckets are
        hashed once (a cache), and the counts summed in one pass: the sums are multiples of 0.25, exact in
        float64 and float32 alike (below 2**22), so the vectors are the same whatever the order of the additions."""
        dim, cache = self.native_dim, self._words
        words: list[int] = []
        grams: list[int] = []
        n_words: list[int] = []
        n_grams: list[int] = []
        for text in texts:
            w, g = len(words), len(grams)
            for word in _WORD.findall(text.lower()):
                found = cache.get(word)
                if found is None:
                    found = _word_features(word, dim)
                    if len(cache) < WORD_CACHE:
                        cache[word] = found
                words.append(found[0])
                grams.extend(found[1])
            n_words.append(len(words) - w)
            n_grams.append(len(grams) - g)
        out: Vectors = (_summed(words, n_words, dim) + 0.25 * _summed(grams, n_grams, dim)).astype(np.float32)
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
