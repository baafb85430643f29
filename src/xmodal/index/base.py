"""The ``VectorIndex`` interface shared by every vector index backend.

An index maps int64 *labels* (the engine's row numbers) to L2-normalised float32 vectors and
answers inner-product (= cosine) top-k queries. ``allowed`` restricts a search to a sorted array
of labels; it is applied *before* the top-k cut, so a filtered search returns k hits whenever
at least k allowed labels are in the index, and never a label outside ``allowed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Labels = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float32]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product top-k search over labelled vectors."""

    kind: str
    dim: int

    def add(self, labels: Labels, vectors: Vectors) -> None:
        """Insert vectors; a label already present is replaced (upsert)."""

    def remove(self, labels: Labels) -> int:
        """Remove labels (absent ones are ignored); returns how many were removed."""

    def search(self, queries: Vectors, k: int, allowed: Labels | None = None) -> tuple[Labels, Scores]:
        """Top-k per query row: labels [q, k] (``-1`` pads missing hits) and scores [q, k], best first."""

    def labels(self) -> Labels:
        """Every label in the index, in no particular order."""

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` (a manifest plus arrays; never pickle)."""

    def __len__(self) -> int: ...


def check_vectors(vectors: npt.ArrayLike, dim: int, name: str = "vectors") -> Vectors:
    """Coerce to a C-contiguous float32 [n, dim] array or raise a clear error."""
    from ..errors import ValidationError

    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValidationError(
            name, f"has shape {arr.shape}, expected [n, {dim}]", "encode with the index's encoder and dim"
        )
    if not np.isfinite(arr).all():
        raise ValidationError(name, "contains NaN or infinite values", "check the encoder output")
    return arr


def check_k(k: int) -> int:
    """A positive int ``k`` or a clear error."""
    from ..errors import ValidationError

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValidationError("k", f"must be a positive integer, got {k!r}", "ask for at least one hit")
    return int(k)


def pad_results(labels: list[Labels], scores: list[Scores], k: int) -> tuple[Labels, Scores]:
    """Stack per-query results into [q, k] arrays padded with -1 / -inf."""
    out_l = np.full((len(labels), k), -1, dtype=np.int64)
    out_s = np.full((len(labels), k), -np.inf, dtype=np.float32)
    for i, (lab, sc) in enumerate(zip(labels, scores, strict=True)):
        out_l[i, : len(lab)] = lab
        out_s[i, : len(sc)] = sc
    return out_l, out_s
