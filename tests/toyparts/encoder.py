"""A toy encoder from outside the package: letter counts (a-z) of the text, as a 26-d unit vector."""

from __future__ import annotations

from typing import Any

import numpy as np

from xmodal.encoders import BaseEncoder, Purpose
from xmodal.encoders.base import Vectors

NAME = "tests.toyparts.encoder:LetterEncoder"


def letter_counts(texts: list[str]) -> Vectors:
    """Each text's count of every Latin letter (case folded): a 26-d vector."""
    out = np.zeros((len(texts), 26), dtype=np.float32)
    for i, text in enumerate(texts):
        for ch in text.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1.0
    return out


class LetterEncoder(BaseEncoder):
    name = NAME  # a dotted path: the index records it, and every adapter resolves it again
    native_dim = 26
    modalities = frozenset({"text"})

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        return letter_counts(texts)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}
