"""The catalog in memory: id ↔ row and each row's filterable attributes, derived from the store.

The store owns the mapping; this is the engine's read cache of it, kept in step by the same change-log
replay as every other derived structure (:mod:`xmodal.changes`), so applying a change twice is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .filters import AttributeTable
from .store.base import Store, StoredItem


class Catalog:
    """Item ids by row and rows by id, with an :class:`AttributeTable` for filters."""

    def __init__(self) -> None:
        self.row_by_id: dict[str, int] = {}
        self.id_by_row: dict[int, str] = {}
        self.attrs_by_row: dict[int, dict[str, Any]] = {}
        self.attributes = AttributeTable()

    @classmethod
    def load(cls, store: Store) -> Catalog:
        catalog = cls()
        for item_id, row, attrs in store.id_rows():
            catalog.remember(item_id, row, attrs)
        return catalog

    def __len__(self) -> int:
        return len(self.row_by_id)

    def remember(self, item_id: str, row: int, attrs: dict[str, Any]) -> None:
        self.forget(row)
        old = self.row_by_id.get(item_id)
        if old is not None:  # the id moved to a new row (re-added after a delete seen out of order)
            self.forget(old)
        self.row_by_id[item_id], self.id_by_row[row], self.attrs_by_row[row] = row, item_id, attrs
        self.attributes.add(row, attrs)

    def forget(self, row: int) -> None:
        item_id = self.id_by_row.pop(row, None)
        if item_id is not None:
            if self.row_by_id.get(item_id) == row:
                del self.row_by_id[item_id]
            self.attributes.remove(row, self.attrs_by_row.pop(row))

    # -- a change-log follower ---------------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        for s in stored:
            self.remember(s.item.id, s.row, s.item.filter_fields())  # attributes, parent, span

    def on_delete(self, rows: Sequence[int]) -> None:
        for row in rows:
            self.forget(row)

    # -- reads -------------------------------------------------------------------------------------
    def rows(self) -> np.ndarray:
        return np.fromiter(self.id_by_row.keys(), dtype=np.int64, count=len(self.id_by_row))

    def attributes_of(self, row: int) -> Mapping[str, Any]:
        return self.attrs_by_row.get(row, {})
