"""Collection operations the engine delegates to: count with a filter, look-ups by id, delete by filter,
clear and attribute updates.

:class:`Collection` works on the engine's parts (the store, the in-memory catalog, its locks) and goes
through the engine's own write path for every change (``commit`` and ``delete``), so the change log,
the vector backend and every extension see each one. :class:`~xmodal.engine.Engine` keeps the public
methods and calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from .catalog import Catalog
from .errors import NotFoundError
from .ingest.prepare import Entry
from .records import Item
from .rwlock import RWLock
from .store.base import Store, StoredItem
from .updates import check_delete_filter, updated_item

#: The engine's write path: commit ``(item, vectors)`` entries (store, then every derived structure).
Commit = Callable[[Sequence[Entry]], list[StoredItem]]


class Collection:
    """The collection operations over an engine's parts (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        lock: RWLock,
        writing: AbstractContextManager[Any],
        *,
        refresh: Callable[[], None],
        commit: Commit,
        delete: Callable[[Sequence[str]], int],
    ) -> None:
        """``lock``: the readers–writer lock the catalog changes under; ``writing``: the engine's one-write-
        at-a-time lock; ``refresh`` catches the catalog up with other processes' writes."""
        self._store, self._catalog, self._lock, self._writing = store, catalog, lock, writing
        self._refresh, self._commit, self._delete = refresh, commit, delete

    # -- reads --------------------------------------------------------------------------------
    def count(self, filters: Mapping[str, Any] | None = None, *, strict: bool = False) -> int:
        """How many items match ``filters`` (every item when there is none)."""
        self._refresh()
        with self._lock.read():
            rows = self._catalog.attributes.match(filters or {}, strict=strict)
            return len(self._catalog) if rows is None else len(rows)

    def stored(self, item_id: str) -> StoredItem:
        """The stored item (with its vectors), or :class:`NotFoundError`."""
        stored = self._store.get(item_id)
        if stored is None:
            raise NotFoundError(f"no item with id {item_id!r}")
        return stored

    # -- writes -------------------------------------------------------------------------------
    def delete_where(self, filters: Mapping[str, Any], *, strict: bool = False) -> int:
        """Delete every item that matches ``filters`` (their segments with them); how many matched."""
        check_delete_filter(filters)
        with self._writing:  # nothing is written between the match and the delete
            self._refresh()
            with self._lock.read():
                rows = self._catalog.attributes.match(filters, strict=strict)
                ids = [self._catalog.id_by_row[int(row)] for row in (rows if rows is not None else ())]
            return self._delete(ids) if ids else 0

    def clear(self) -> int:
        """Delete every item; how many there were."""
        with self._writing:
            self._refresh()
            with self._lock.read():
                ids = list(self._catalog.row_by_id)
            return self._delete(ids) if ids else 0

    def update_attributes(self, item_id: str, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
        """Update an item's attributes, keeping its vectors as stored; the updated item."""
        with self._writing:
            stored = self.stored(item_id)
            item = updated_item(stored.item, attributes, merge=merge)
            self._commit([(item, stored.vectors)])
        return item
