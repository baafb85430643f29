"""The ``Store`` seam: the source of truth the engine and its extensions read and write.

A store keeps items with their vectors, the index settings (``meta``) and a change log; it owns the
mapping between item ids and *rows* (the integer labels every derived structure keys items by: vector
backends, the catalog cache, extensions). Every write appends to the change log, so a derived structure
checkpointed at sequence *s* catches up by replaying the changes after *s* (:mod:`xmodal.changes`).
:class:`~xmodal.store.sqlite.SQLiteStore` is the embedded implementation; a server-backed store (e.g.
PostgreSQL) implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..records import Item
from .audit import AuditEntry
from .sqlite import (
    CatalogRows,
    Erased,
    StoredItem,
)  # the records a store hands out (defined with the SQLite store for now)

if TYPE_CHECKING:
    from .textindex import TextIndex

__all__ = ["AuditEntry", "CatalogRows", "Erased", "Store", "StoredItem"]


@runtime_checkable
class Store(Protocol):
    """Items, vectors, settings and the change log; id ↔ row. An acknowledged write is committed."""

    @property
    def fulltext(self) -> TextIndex:
        """The BM25F full-text index, written in the items' own transactions."""
        ...

    # -- writes (each call one transaction; each item appends a change) --------------------------
    def put(self, entries: Sequence[tuple[Item, Mapping[str, np.ndarray]]]) -> list[int]:
        """Upsert items with their vectors by kind; returns their rows (a replaced item keeps its row)."""
        ...

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete items by id with their segments; returns every row deleted."""
        ...

    def delete_tree(self, ids: Sequence[str]) -> tuple[list[int], int]:
        """Delete items by id and their segments (items whose ``parent`` is a deleted id, at any depth) in
        one transaction; returns the rows deleted and how many of ``ids`` existed."""
        ...

    def erase(self, ids: Sequence[str], entry: AuditEntry | None = None) -> Erased:
        """:meth:`delete_tree` recording ``entry`` in the admin audit log in the same transaction; returns the
        rows and ids deleted, how many of ``ids`` existed and the media references they held. Freed storage
        holds none of their bytes once :meth:`scrub` ran."""
        ...

    def media_in_use(self, refs: Sequence[str]) -> set[str]:
        """Which of the media references ``refs`` some item still holds."""
        ...

    def scrub(self) -> None:
        """Leave no bytes of deleted items in the storage (merge full-text segments, truncate the log)."""
        ...

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries of the admin audit log, newest first."""
        ...

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, item_id: str) -> StoredItem | None: ...

    def get_rows(self, rows: Sequence[int], with_vectors: bool = False) -> dict[int, StoredItem]:
        """Items by row; rows that no longer exist are absent."""
        ...

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) by row, without the rest of the item; absent rows are left out."""
        ...

    def item_texts(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, text) by row, without the rest of the item; absent rows are left out."""
        ...

    def catalog_rows(self) -> CatalogRows:
        """Every item's id, row and encoded filter fields (attributes, ``parent``, span position), in row
        order: the id ↔ row mapping and what filters need, read when the engine opens."""
        ...

    def iter_all(self, batch: int = 2000) -> Iterator[StoredItem]:
        """Every item with its vectors, in row order (rebuilds derived structures)."""
        ...

    def count(self) -> int: ...

    def counts_by_modality(self) -> dict[str, int]: ...

    def segment_counts_by_modality(self) -> dict[str, int]:
        """Per modality, how many items are segments (have a ``parent``): pages, chunks, clips."""
        ...

    def vector_rows(self) -> dict[str, np.ndarray]:
        """Per vector kind, the sorted rows that hold a vector of it (what the vector backend must hold)."""
        ...

    def integrity(self, *, full: bool = False) -> list[str]:
        """What a quick structural check of the storage (``full``: a thorough one) finds wrong; empty: sound."""
        ...

    # -- the change log ---------------------------------------------------------------------------
    def last_seq(self) -> int: ...

    def changes_since(self, seq: int) -> list[tuple[int, str]]:
        """(row, op) of every change after ``seq``, oldest first; op is ``"put"`` or ``"delete"``."""
        ...

    # -- settings -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...
