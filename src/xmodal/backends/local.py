"""The ``local`` backend: one in-process index per vector kind (exact, FAISS HNSW or auto), checkpointed
under the index folder as derived data.

Filters resolve to allowed rows through the engine's attribute table (:attr:`BackendContext.rows`),
which every index kind applies before its top-k cut. A checkpoint is a folder with ``state.json`` (the
store sequence, the configuration and the kinds present) and one sub-folder per kind, written atomically;
opening loads it, or starts empty (``saved_seq`` 0: the engine rebuilds from the store) when it is
missing, corrupt or of another configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, StorageError, ValidationError
from ..filters import FilterExpr
from ..index import VectorIndex, create_index, load_index
from ..records import KIND_NAME, VectorKind
from ..store.files import read_lock, write_dir
from ..store.sqlite import StoredItem
from .base import BackendContext, RowMatcher, VectorHits, best_per_row

log = logging.getLogger(__name__)

STATE = "state.json"
FORMAT_VERSION = 2  # 1: always the three built-in kinds, no "kinds" list


class LocalBackend:
    """Per-kind vector indexes over the store's rows, searched together."""

    name = "local"

    def __init__(self, context: BackendContext) -> None:
        """An empty backend; :meth:`open` loads the checkpoint too."""
        self._dim = int(context.dim)
        self.index_kind = context.index_kind
        self.index_options = dict(context.index_options)
        self._folder = context.folder
        self._row_matcher = context.rows
        self._saved_seq = 0
        self._dirty = False
        #: The index of each kind present (public for benchmarks and tests of this backend).
        self.indexes: dict[str, VectorIndex] = {}
        self._order: list[str] = []  # the kinds in search order (see _ordered)
        self._new_index()  # a bad kind or option fails now

    @classmethod
    def open(cls, context: BackendContext) -> LocalBackend:
        """Load the checkpoint in ``context.folder``, or start empty (``saved_seq`` 0)."""
        backend = cls(context)
        try:
            with read_lock(context.folder):  # never a checkpoint half swapped by another process
                backend._saved_seq = backend._load()
        except (StorageError, OSError, ValueError, KeyError) as exc:
            if context.folder.exists():
                log.warning("rebuilding the vector indexes from the store: %s", exc)
            backend.indexes, backend._saved_seq = {}, 0
        backend._order = _ordered(backend.indexes)
        return backend

    # -- the VectorBackend protocol ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def saved_seq(self) -> int:
        return self._saved_seq

    def kinds(self) -> list[str]:
        return [kind for kind in self._order if len(self.indexes[kind])]

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return sum(len(ix) for ix in self.indexes.values())
        index = self.indexes.get(kind)
        return 0 if index is None else len(index)

    def rows(self, kind: str) -> npt.NDArray[np.int64]:
        """The rows holding a vector of ``kind``, sorted (what ``xmodal check`` compares with the store)."""
        index = self.indexes.get(kind)
        return np.empty(0, np.int64) if index is None else np.sort(np.asarray(index.labels(), np.int64))

    def upsert(self, stored: Sequence[StoredItem]) -> None:
        """Upsert the vectors of stored items (a kind the item no longer has is removed)."""
        if not stored:
            return
        rows = np.fromiter((s.row for s in stored), dtype=np.int64, count=len(stored))
        vectors = [{str(kind): vec for kind, vec in s.vectors.items()} for s in stored]
        for kind in {kind for vecs in vectors for kind in vecs} - set(self.indexes):
            self._index(kind)
        for kind, index in self.indexes.items():
            have = [(s.row, vecs[kind]) for s, vecs in zip(stored, vectors, strict=True) if kind in vecs]
            lacking = rows[[kind not in vecs for vecs in vectors]]
            if len(lacking) and len(index):
                index.remove(lacking)
            if have:
                labels = np.fromiter((r for r, _ in have), dtype=np.int64, count=len(have))
                index.add(labels, np.stack([v for _, v in have]))
        self._dirty = True

    def remove(self, rows: Sequence[int]) -> None:
        labels = np.fromiter(rows, dtype=np.int64)
        if len(labels):
            for index in self.indexes.values():
                index.remove(labels)
            self._dirty = True

    def search(
        self, queries: np.ndarray, k: int, kinds: Sequence[str] | None = None, where: FilterExpr | None = None
    ) -> list[VectorHits]:
        """Per query: rows, scores and the matched vector kind, best score per row, best first."""
        names = self.kinds() if kinds is None else [str(kind) for kind in kinds if self.count(kind)]
        allowed = None if where is None else self._matcher().match_expr(where)
        per_kind = [self.indexes[kind].search(queries, k, allowed) for kind in names]
        return [
            best_per_row([lab[q] for lab, _ in per_kind], [sc[q] for _, sc in per_kind], names, k)
            for q in range(len(queries))
        ]

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> npt.NDArray[np.float32]:
        out = np.zeros(len(rows), dtype=np.float32)
        index = self.indexes.get(kind)
        wanted = np.array(sorted({r for r in rows if r >= 0}), dtype=np.int64)
        if index is None or len(index) == 0 or len(wanted) == 0:
            return out
        labels, scores = index.search(np.asarray(vector, np.float32).reshape(1, -1), len(wanted), wanted)
        found = {lab: s for lab, s in zip(labels[0].tolist(), scores[0].tolist(), strict=True) if lab >= 0}
        return np.array([found.get(r, 0.0) for r in rows], dtype=np.float32)

    def checkpoint(self, seq: int) -> bool:
        """Write a checkpoint atomically (a new folder renamed over the old one), only when changed. ``seq``
        must be a sequence this state reflects (the engine's applied one, never the store's newest)."""
        if seq == self._saved_seq and not self._dirty:
            return False
        present = self.kinds()
        state = {"seq": seq, "format_version": FORMAT_VERSION, **self.config(), "kinds": present}

        def write(tmp: Path) -> None:
            for kind in present:
                self.indexes[kind].save(tmp / kind)
            (tmp / STATE).write_text(json.dumps(state, indent=2))

        write_dir(self._folder, write)  # under the folder lock: another process's checkpoint waits its turn
        self._saved_seq, self._dirty = seq, False
        return True

    def purge(self) -> None:
        """Drop every removed vector still kept as a tombstone (an HNSW graph's), so that the next checkpoint
        holds no vector of a deleted item: a privacy-complete delete (:mod:`xmodal.erasure`)."""
        for index in self.indexes.values():
            compact = getattr(index, "compact", None)
            if callable(compact):
                compact()
                self._dirty = True

    def close(self) -> None:
        """Nothing to release: the engine checkpoints before closing."""

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self.upsert(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.remove(rows)

    # -- internals --------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"dim": self._dim, "index_kind": self.index_kind, "index_options": self.index_options}

    def _new_index(self) -> VectorIndex:
        """An empty index for a new vector kind (of the configured index kind and options)."""
        return create_index(self.index_kind, self._dim, **self.index_options)

    def _load_index(self, directory: Path) -> VectorIndex:
        """A kind's index as its checkpoint folder holds it."""
        return load_index(directory)

    def _index(self, kind: str) -> VectorIndex:
        if not KIND_NAME.fullmatch(kind):
            raise ValidationError(
                "vector kind", f"{kind!r} is not a valid name", "use lower-case letters, digits, _ and -"
            )
        index = self.indexes[kind] = self._new_index()
        self._order = _ordered(self.indexes)
        return index

    def _matcher(self) -> RowMatcher:
        if self._row_matcher is None:
            raise ConfigError(
                "the local backend filters through the engine's attribute table: give BackendContext.rows"
            )
        return self._row_matcher

    def _load(self) -> int:
        folder = self._folder
        state = json.loads((folder / STATE).read_text())
        if {k: state.get(k) for k in self.config()} != self.config():
            raise StorageError("checkpoint was written with another configuration")
        kinds = state["kinds"] if state.get("format_version", 1) >= 2 else [kind.value for kind in VectorKind]
        for kind in kinds:
            if not isinstance(kind, str) or not KIND_NAME.fullmatch(kind):
                raise StorageError(f"checkpoint names a vector kind {kind!r} that is not a folder name")
            index = self._load_index(folder / kind)
            if index.dim != self._dim:
                raise StorageError(f"checkpoint {kind} index has dim {index.dim}, expected {self._dim}")
            if len(index):
                self.indexes[kind] = index
        return int(state["seq"])


def _ordered(kinds: Iterable[str]) -> list[str]:
    """The built-in kinds in their usual order (text, image, combined), then any other kind by name."""
    present = {str(kind) for kind in kinds}
    builtin = [kind.value for kind in VectorKind if kind.value in present]
    return builtin + sorted(present - set(builtin))


if TYPE_CHECKING:  # the registry loads it lazily: check the protocols statically here
    from .base import BackendFactory

    _FACTORY: BackendFactory = LocalBackend
