"""An error-correcting code over RivaGAN's 32 bits: fewer payload bits, protected, decoded by soft decision.

RivaGAN carries exactly 32 bits and reads some of them wrong on flat pictures, clip-art and after JPEG
(``docs/benchmarks.md``). A shorter message spread over all 32 bits by a code with a large minimum distance
survives those errors. The codes are binary Reed-Muller codes of length 32 (m = 5):

- ``rm1``: RM(1, 5), [32, 6, 16] — a 6-bit message, any 7 wrong bits corrected (the first-order code is the
  best possible for its length and size);
- ``rm2``: RM(2, 5), [32, 16, 8] — a 16-bit message, any 3 wrong bits corrected (the parameters of the
  extended BCH(32, 16) code);
- ``rep4``: each of 8 message bits repeated 4 times, [32, 8, 4], 1 wrong bit corrected: the baseline.

Why these and not a library: ``reedsolo`` corrects bytes over GF(256), and four bytes give one correctable
byte, useless against wrong bits scattered over the 32; ``galois`` pulls in numba for what is here a
16 x 32 generator matrix. With at most 2**16 codewords, decoding is exact maximum-likelihood by exhaustive
correlation: the decoder's per-bit scores are log-odds (RivaGAN's decoder outputs logits) and the codeword with the
largest correlation with them wins (soft decision: a confident bit weighs more than a doubtful one), which with hard
0/1 inputs is minimum Hamming distance decoding and so corrects every pattern of up to ``(d - 1) // 2``
errors (tested). Codewords are scrambled by a fixed mask (:data:`MASK`: a coset of the code, the same distances) so that
no payload is all 0s or all 1s, which unmarked flat pictures tend to read as. A 32-bit codeword is what RivaGAN
embeds, so detection against a known payload compares
the 32 bits read with its codeword, as before.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

N = 32  # RivaGAN's bits
LLR_CAP = 8.0
#: every codeword is XORed with this (the default payload, "xmod"): the code's all-0 and all-1 words would
#: otherwise be payloads, and RivaGAN reads unmarked flat pictures as mostly 0 bits; a coset of the code has the
#: same distances, and message 0 is the default payload
MASK = 0x786D6F64
M = 5  # 2**M == N

Array = np.ndarray[Any, np.dtype[Any]]


def _reed_muller_generator(order: int) -> Array:
    """RM(order, 5)'s generator: one row per monomial of degree <= order in 5 variables, evaluated at the 32
    points of GF(2)**5 (point j has the bits of j)."""
    points = np.array([[(j >> (M - 1 - i)) & 1 for i in range(M)] for j in range(N)], dtype=np.uint8)
    rows = []
    for degree in range(order + 1):
        for variables in itertools.combinations(range(M), degree):
            row = np.ones(N, dtype=np.uint8)
            for v in variables:
                row &= points[:, v]
            rows.append(row)
    return np.array(rows, dtype=np.uint8)


def _repetition_generator(copies: int) -> Array:
    """k = 32 / copies message bits, bit i at positions i, i + k, i + 2k, ... (copies apart, not adjacent)."""
    k = N // copies
    return np.array([[1 if j % k == i else 0 for j in range(N)] for i in range(k)], dtype=np.uint8)


@dataclass(frozen=True)
class Code:
    """A binary linear [32, k, d] code with exhaustive soft-decision decoding."""

    name: str
    generator: Array = field(repr=False)  # k x 32 over GF(2)
    distance: int
    _codewords: Array = field(init=False, repr=False, compare=False)  # 2**k x 32, +-1 (bit 1 -> +1)
    _signs: Array = field(init=False, repr=False, compare=False)  # the same as float32, for the correlation

    def __post_init__(self) -> None:
        k = self.k
        messages = (np.arange(2**k, dtype=np.int64)[:, None] >> np.arange(k - 1, -1, -1)) & 1
        words = (messages.astype(np.int64) @ self.generator.astype(np.int64)) % 2
        mask = np.array([(MASK >> (N - 1 - i)) & 1 for i in range(N)], dtype=np.int64)
        object.__setattr__(self, "_codewords", (2 * (words ^ mask) - 1).astype(np.int8))
        object.__setattr__(self, "_signs", self._codewords.astype(np.float32))

    @property
    def k(self) -> int:
        """Message bits."""
        return int(self.generator.shape[0])

    @property
    def corrects(self) -> int:
        """Wrong bits always corrected: (d - 1) // 2."""
        return (self.distance - 1) // 2

    def _check(self, message: int) -> None:
        if not isinstance(message, int) or not 0 <= message < 2**self.k:
            raise ValueError(
                f"a {self.name} watermark message is an integer in [0, 2**{self.k}), got {message!r}: "
                f"use a shorter message or another code (watermark_code.CODES)"
            )

    def codeword_bits(self, message: int) -> Array:
        """The 32 bits (0/1, uint8) that carry ``message`` (scrambled by :data:`MASK`)."""
        self._check(message)
        bits: Array = ((self._codewords[message] + 1) // 2).astype(np.uint8)
        return bits

    def encode(self, message: int) -> int:
        """The 32-bit RivaGAN payload (most significant bit first) that carries ``message``."""
        return int("".join(str(b) for b in self.codeword_bits(message)), 2)

    def decode(self, log_odds: Array) -> tuple[int, int]:
        """The most likely message given the 32 bits' log-odds of being 1 (> 0: more likely 1; hard bits as
        +-1 work too), and the Hamming distance from the hard bits to its codeword. Log-odds are clipped to
        +-:data:`LLR_CAP` so that no one bit the decoder is very sure of outvotes the others."""
        llr = np.asarray(log_odds, dtype=np.float64).reshape(-1)
        if llr.shape != (N,) or not np.all(np.isfinite(llr)):
            raise ValueError(f"decode takes {N} finite log-odds (one per bit), got shape {llr.shape}")
        scores = self._signs @ np.clip(llr, -LLR_CAP, LLR_CAP).astype(np.float32)
        message = int(np.argmax(scores))
        hard = np.where(llr > 0, 1, -1).astype(np.int8)
        return message, int((self._codewords[message] != hard).sum())


CODES: dict[str, Code] = {
    "rm1": Code("rm1", _reed_muller_generator(1), 16),
    "rm2": Code("rm2", _reed_muller_generator(2), 8),
    "rep4": Code("rep4", _repetition_generator(4), 4),
}


def code(name: str) -> Code:
    """The code called ``name`` (:data:`CODES`); :class:`ValueError` naming the choices otherwise."""
    try:
        return CODES[name]
    except KeyError:
        raise ValueError(f"unknown watermark code {name!r}: choose one of {', '.join(CODES)}") from None
