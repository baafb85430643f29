"""Vector arithmetic every layer shares (no other xmodal import: the index, encoder and task layers use it)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def normalize(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out
