"""The catalog in memory: id ↔ row and each row's filterable attributes, derived from the store.

The store owns the mapping; this is the engine's read cache of it, kept in step by the same change-log
replay as every other derived structure (:mod:`xmodal.changes`), so applying a change twice is harmless.

Opening is cheap: :meth:`Catalog.load` reads the ids, rows and *encoded* filter fields in one query and
parses none of them. A row's fields are decoded when asked for (:meth:`Catalog.attributes_of`, decodings
cached by content), and the :class:`AttributeTable` is built on the first use of :attr:`Catalog.attributes`
(a filter, facets, query understanding), decoding each distinct encoding once. From then on every write
updates it too. The build holds the catalog's own lock, so concurrent first filters (searches share the
engine's read lock) build it once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .filters import AttributeTable, FilterExpr
from .index.base import Labels
from .store.base import CatalogRows, Store, StoredItem

Fields = dict[str, Any]
DECODED_CACHE = 4096  # distinct encodings whose decoded fields are kept


def _nothing_encoded(encoded: str) -> Fields:
    raise AssertionError("a catalog built empty holds no encoded fields")


class Catalog:
    """Item ids by row and rows by id, with an :class:`AttributeTable` for filters (built when first used)."""

    def __init__(self, loaded: CatalogRows | None = None) -> None:
        """An empty catalog, or one holding ``loaded`` (see :meth:`load`)."""
        ids, rows, fields = (loaded.ids, loaded.rows, loaded.fields) if loaded is not None else ([], [], [])
        self.row_by_id: dict[str, int] = dict(zip(ids, rows, strict=True))
        self.id_by_row: dict[int, str] = dict(zip(rows, ids, strict=True))
        #: Each row's filter fields: encoded (as loaded, a ``str``) or decoded (as written since).
        self._fields: dict[int, str | Fields] = dict(zip(rows, fields, strict=True))
        decode = loaded.decode if loaded is not None else _nothing_encoded
        self._decode = functools.lru_cache(maxsize=DECODED_CACHE)(decode)
        self._table: AttributeTable | None = None
        self._lock = threading.Lock()  # the table's build against another build or a write

    @classmethod
    def load(cls, store: Store) -> Catalog:
        """The catalog of every item in ``store`` (one read; no field is parsed yet)."""
        return cls(store.catalog_rows())

    def __len__(self) -> int:
        return len(self.row_by_id)

    @property
    def attributes(self) -> AttributeTable:
        """The attribute table of every row, built on first use."""
        table = self._table
        if table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._build_table()
                table = self._table
        return table

    def _build_table(self) -> AttributeTable:
        """The table of the rows held now: rows with the same encoded fields are added together, in order of
        each one's first row (so values are listed in the order a row-by-row build would list them)."""
        groups: dict[str | int, list[int]] = {}  # an encoding, or a decoded row by its own number
        for row, fields in self._fields.items():
            groups.setdefault(fields if isinstance(fields, str) else row, []).append(row)
        table = AttributeTable()
        for rows in groups.values():
            table.add_rows(rows, self._decoded(self._fields[rows[0]]))
        return table

    def _decoded(self, fields: str | Fields) -> Fields:
        return self._decode(fields) if isinstance(fields, str) else fields

    def remember(self, item_id: str, row: int, attrs: Fields) -> None:
        """Hold ``item_id`` at ``row`` with these filter fields (replacing what the row or the id had)."""
        with self._lock:
            self._remember(item_id, row, attrs)

    def forget(self, row: int) -> None:
        """Drop ``row`` (nothing when absent)."""
        with self._lock:
            self._forget(row)

    def _remember(self, item_id: str, row: int, attrs: Fields) -> None:
        self._forget(row)
        old = self.row_by_id.get(item_id)
        if old is not None:  # the id moved to a new row (re-added after a delete seen out of order)
            self._forget(old)
        self.row_by_id[item_id], self.id_by_row[row], self._fields[row] = row, item_id, attrs
        if self._table is not None:
            self._table.add(row, attrs)

    def _forget(self, row: int) -> None:
        item_id = self.id_by_row.pop(row, None)
        if item_id is not None:
            if self.row_by_id.get(item_id) == row:
                del self.row_by_id[item_id]
            fields = self._fields.pop(row)
            if self._table is not None:
                self._table.remove(row, self._decoded(fields))

    # -- a change-log follower ---------------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        with self._lock:
            for s in stored:
                self._remember(s.item.id, s.row, s.item.filter_fields())  # attributes, parent, span

    def on_delete(self, rows: Sequence[int]) -> None:
        with self._lock:
            for row in rows:
                self._forget(row)

    # -- reads -------------------------------------------------------------------------------------
    def rows(self) -> np.ndarray:
        return np.fromiter(self.id_by_row.keys(), dtype=np.int64, count=len(self.id_by_row))

    def attributes_of(self, row: int) -> Mapping[str, Any]:
        fields = self._fields.get(row)
        return {} if fields is None else self._decoded(fields)

    def match_expr(self, where: FilterExpr) -> Labels:
        """Sorted rows that satisfy a parsed filter (a :class:`~xmodal.backends.base.RowMatcher`, so that a
        backend given the catalog builds the table only when it filters)."""
        return self.attributes.match_expr(where)
