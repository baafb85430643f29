"""Acoustic fingerprints with Chromaprint (Debian ``libchromaprint-tools``: ``fpcalc -raw``) and the bit
agreement of two of them, for duplicate and near-duplicate detection.

A raw Chromaprint fingerprint is one 32-bit word per ~0.124 s of sound (Lalinský's Chromaprint, after
Ke, Hoiem and Sukthankar's "Computer vision for music identification", 2005): each bit a sign of a
filter over the chroma image. Two recordings of the same sound agree on most bits at the right time
offset; unrelated sounds agree on about half. :func:`similarity` is the best agreement over offsets of
up to :data:`MAX_SHIFT` words (a copy trimmed by ~3 s still lines up).

``fpcalc`` exits with status 3 when its input ends (which it always does on a pipe), even when it printed
a fingerprint: the output is read, not the status.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .decode import RATE, Samples, to_pcm16
from .probe import tool

Fingerprint = npt.NDArray[np.uint32]
WORD_SECONDS = 4096 / 3 / 11025  #: seconds of sound per fingerprint word (Chromaprint's hop at 11,025 Hz)
MAX_SHIFT = 24  #: the largest offset tried, in words (~3 s)
MIN_OVERLAP = 8  #: the fewest words two fingerprints must overlap by to be compared (~1 s)
#: Bit agreement at or above which two sounds are called duplicates: benchmarks/bench_audio_dups.py chose
#: 0.834 (best F1, middle of the gap) on 100 calibration clips x 5 alterations (copies re-encoded to MP3
#: 64 kb/s and Ogg, trimmed by up to 2 s, ±6 dB, noise at 20 dB SNR), rounded to 0.83; on 200 held-out clips
#: their copies scored ≥ 0.908 and other clips ≤ 0.808: precision and recall 1.0 there.
DUPLICATE_THRESHOLD = 0.83
FILE_SECONDS = 120.0  #: how much of a file its own fingerprint covers (AcoustID's convention)
_CHUNK_WORDS = 186  #: words per attribute string: base64 of 744 bytes is 992 characters (the limit is 1,000)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def fingerprint(samples: Samples, *, rate: int = RATE, seconds: float | None = None) -> Fingerprint:
    """The raw Chromaprint fingerprint of mono float samples (of the first ``seconds`` when given)."""
    if seconds is not None:
        samples = samples[: int(seconds * rate)]
    cmd = [tool("fpcalc", "libchromaprint-tools"), "-raw", "-json", "-format", "s16le", "-rate", str(rate)]
    cmd += ["-channels", "1", "-length", str(int(len(samples) / rate) + 1), "-"]
    done = subprocess.run(cmd, input=to_pcm16(samples), capture_output=True, timeout=120, check=False)
    try:
        words = json.loads(done.stdout or b"{}").get("fingerprint") or []
    except ValueError:
        words = []
    return np.asarray(words, dtype=np.uint32)


def similarity(a: Fingerprint, b: Fingerprint, *, max_shift: int = MAX_SHIFT) -> float:
    """The best share of equal bits between ``a`` and ``b`` over offsets of up to ``max_shift`` words (0.0
    when they cannot overlap by :data:`MIN_OVERLAP` words); ~0.5 for unrelated sounds, 1.0 for the same."""
    best = 0.0
    for shift in range(-max_shift, max_shift + 1):
        x, y = (a[shift:], b) if shift >= 0 else (a, b[-shift:])
        n = min(len(x), len(y))
        if n < MIN_OVERLAP:
            continue
        diff = np.bitwise_xor(x[:n], y[:n]).view(np.uint8)
        best = max(best, 1.0 - float(_POPCOUNT[diff].sum()) / (32.0 * n))
    return best


def similarities(
    a: Fingerprint, others: Sequence[Fingerprint], *, max_shift: int = MAX_SHIFT
) -> npt.NDArray[np.float64]:
    """:func:`similarity` of ``a`` with each of ``others``, computed for all of them at once."""
    if not others:
        return np.zeros(0)
    width = max(len(o) for o in others)
    table = np.zeros((len(others), width), dtype=np.uint32)
    valid = np.zeros((len(others), width), dtype=bool)
    for row, other in enumerate(others):
        table[row, : len(other)] = other
        valid[row, : len(other)] = True
    best = np.zeros(len(others))
    for shift in range(-max_shift, max_shift + 1):
        x, ys, ok = (a[shift:], table, valid) if shift >= 0 else (a, table[:, -shift:], valid[:, -shift:])
        n = min(len(x), ys.shape[1])
        if n < MIN_OVERLAP:
            continue
        diff = np.bitwise_xor(ys[:, :n], x[:n]).view(np.uint8).reshape(len(others), n, 4)
        bits = _POPCOUNT[diff].sum(axis=2, dtype=np.int64) * ok[:, :n]
        count = ok[:, :n].sum(axis=1)
        agree = 1.0 - bits.sum(axis=1) / np.maximum(32.0 * count, 1.0)
        best = np.maximum(best, np.where(count >= MIN_OVERLAP, agree, 0.0))
    return best


def to_attribute(fp: Fingerprint) -> list[str]:
    """A fingerprint as an item attribute: base64 strings of its little-endian words, ≤ 992 characters each."""
    words = np.asarray(fp, dtype="<u4")
    return [
        base64.b64encode(words[i : i + _CHUNK_WORDS].tobytes()).decode("ascii")
        for i in range(0, len(words), _CHUNK_WORDS)
    ]


def from_attribute(value: Sequence[str] | str) -> Fingerprint:
    """The fingerprint kept by :func:`to_attribute`."""
    parts = [value] if isinstance(value, str) else list(value)
    raw = b"".join(base64.b64decode(p) for p in parts)
    return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<u4").astype(np.uint32)
