"""The engine's vector space: one index per vector kind, searched together, checkpointed as derived data.

Checkpoints record the store's change sequence number; opening loads the checkpoint, and the engine
replays only the changes after it (:mod:`xmodal.changes`), or all of them when the checkpoint is
missing, corrupt or of another configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StorageError
from .index import VectorIndex, create_index, load_index
from .index.base import Labels
from .records import Target, VectorKind
from .store.files import fresh_dir, swap_dir
from .store.sqlite import StoredItem

log = logging.getLogger(__name__)

STATE = "state.json"


class VectorSpace:
    """Per-kind vector indexes over the engine's row labels."""

    def __init__(self, dim: int, index_kind: str = "auto", index_options: dict[str, Any] | None = None) -> None:
        self.dim = dim
        self.index_kind = index_kind
        self.index_options = dict(index_options or {})
        self.saved_seq = -1  # the store sequence of the checkpoint on disk (-1: none)
        self.indexes: dict[VectorKind, VectorIndex] = {
            kind: create_index(index_kind, dim, **self.index_options) for kind in VectorKind
        }

    def __len__(self) -> int:
        return sum(len(ix) for ix in self.indexes.values())

    def put(self, stored: Sequence[StoredItem]) -> None:
        """Upsert the vectors of stored items (a kind the item no longer has is removed)."""
        rows = np.fromiter((s.row for s in stored), dtype=np.int64, count=len(stored))
        for kind, index in self.indexes.items():
            have = [(s.row, s.vectors[kind]) for s in stored if kind in s.vectors]
            lacking = rows[[kind not in s.vectors for s in stored]] if len(stored) else rows
            if len(lacking):
                index.remove(lacking)
            if have:
                labels = np.fromiter((r for r, _ in have), dtype=np.int64, count=len(have))
                index.add(labels, np.stack([v for _, v in have]))

    def remove(self, rows: Iterable[int]) -> None:
        labels = np.fromiter(rows, dtype=np.int64)
        for index in self.indexes.values():
            index.remove(labels)

    def search(
        self, queries: np.ndarray, k: int, target: Target, allowed: Labels | None = None
    ) -> list[tuple[Labels, np.ndarray, list[VectorKind]]]:
        """Per query: labels, scores and the matched vector kind, best score per label, best first."""
        kinds = [kind for kind in target.kinds() if len(self.indexes[kind])]
        per_kind = [(kind, *self.indexes[kind].search(queries, k, allowed)) for kind in kinds]
        results = []
        for q in range(len(queries)):
            labels = np.concatenate([lab[q] for _, lab, _ in per_kind]) if per_kind else np.empty(0, np.int64)
            scores = np.concatenate([sc[q] for _, _, sc in per_kind]) if per_kind else np.empty(0, np.float32)
            source: np.ndarray = (
                np.concatenate([np.full(lab.shape[1], i) for i, (_, lab, _) in enumerate(per_kind)])
                if per_kind
                else np.empty(0)
            )
            order = np.lexsort((labels, -scores))
            _, first = np.unique(labels[order], return_index=True)  # best entry of each label
            best = order[np.sort(first)]
            best = best[labels[best] >= 0][:k]
            results.append((labels[best], scores[best], [kinds[int(source[i])] for i in best]))
        return results

    # -- persistence ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "index_kind": self.index_kind, "index_options": self.index_options}

    def save(self, directory: Path, seq: int) -> None:
        """Write a checkpoint atomically (a new folder renamed over the old one)."""
        tmp = fresh_dir(directory)
        for kind, index in self.indexes.items():
            index.save(tmp / kind.value)
        (tmp / STATE).write_text(json.dumps({"seq": seq, "format_version": 1, **self.config()}, indent=2))
        swap_dir(tmp, directory)
        self.saved_seq = seq

    @classmethod
    def open(cls, directory: Path, dim: int, index_kind: str, index_options: dict[str, Any]) -> VectorSpace:
        """Load the checkpoint, or start empty when it is missing, corrupt or of another configuration
        (``saved_seq`` then says 0: the engine replays the store's change log after ``saved_seq``)."""
        space = cls(dim, index_kind, index_options)
        try:
            space.saved_seq = space._load(directory)
        except (StorageError, OSError, ValueError, KeyError) as exc:
            if directory.exists():
                log.warning("rebuilding the vector indexes from the store: %s", exc)
            space = cls(dim, index_kind, index_options)
            space.saved_seq = 0
        return space

    def _load(self, directory: Path) -> int:
        state = json.loads((directory / STATE).read_text())
        if {k: state.get(k) for k in self.config()} != self.config():
            raise StorageError("checkpoint was written with another configuration")
        for kind in VectorKind:
            index = load_index(directory / kind.value)
            if index.dim != self.dim:
                raise StorageError(f"checkpoint {kind.value} index has dim {index.dim}, expected {self.dim}")
            self.indexes[kind] = index
        return int(state["seq"])

    # -- a change-log follower (xmodal.changes) ---------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self.put(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.remove(rows)
