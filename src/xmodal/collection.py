"""Collection operations the engine delegates to: count with a filter, look-ups by id (one or many), hit
vectors, page cursors, scroll, delete by filter, clear and attribute updates.

:class:`Collection` works on the engine's parts (the store, the in-memory catalog, its locks) and goes
through the engine's own write path for every change (``commit`` and ``delete``), so the change log,
the vector backend and every extension see each one. :class:`~xmodal.engine.Engine` keeps the public
methods and calls these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .catalog import Catalog
from .cursor import Cursors, scope_of
from .errors import NotFoundError, ValidationError, brief
from .ingest.prepare import Entry
from .records import MAX_K, Hits, Item
from .results import hit_vector
from .rwlock import RWLock
from .store.base import Store, StoredItem
from .updates import check_delete_filter, updated_item

#: The engine's write path: commit ``(item, vectors)`` entries (store, then every derived structure).
Commit = Callable[[Sequence[Entry]], list[StoredItem]]


MAX_PAGE = 10_000  # items in one scroll page


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a scroll: items in row order (the order they were first added), the cursor of the next page
    (None on the last one), (``with_vectors``) each item's vectors by kind, aligned with the items, and the
    items of the page the guards withheld from the caller, counted by category (:mod:`xmodal.screening`)."""

    items: tuple[Item, ...]
    next_cursor: str | None
    vectors: tuple[dict[str, np.ndarray], ...] | None = None
    withheld: Mapping[str, int] = field(default_factory=dict)  # items the guards left out, by category


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a batch get found: the items in the order asked (an id asked twice, once), the ids the index does
    not hold, and (``with_vectors``) each item's vectors by kind, aligned with the items."""

    items: tuple[Item, ...]
    missing: tuple[str, ...]
    vectors: tuple[dict[str, np.ndarray], ...] | None = None
    withheld: Mapping[str, str] = field(default_factory=dict)  # id -> the category the guards withheld it for


def check_limit(limit: object) -> None:
    """Refuse a scroll page size that is not an integer from 1 to :data:`MAX_PAGE`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be an integer from 1 to {MAX_PAGE}, got {brief(limit)}", "e.g. 100")


def wanted_ids(ids: object) -> list[str]:
    """``ids`` checked to be a list of strings, each once (in the order first asked)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise ValidationError("ids", "must be a list of item ids", 'pass e.g. ["a1", "b2"]')
    for i, item_id in enumerate(ids):
        if not isinstance(item_id, str):
            raise ValidationError(f"ids[{i}]", f"must be a string, got {brief(item_id)}", "pass item ids as text")
    return list(dict.fromkeys(ids))


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
        delete: Callable[..., int],  # the engine's delete(ids, *, purge_feedback=...)
        cursors: Cursors,
    ) -> None:
        """``lock``: the readers–writer lock the catalog changes under; ``writing``: the engine's one-write-
        at-a-time lock; ``refresh`` catches the catalog up with other processes' writes; ``cursors`` issues
        and reads this index's page cursors."""
        self._store, self._catalog, self._lock, self._writing = store, catalog, lock, writing
        self._refresh, self._commit, self._delete = refresh, commit, delete
        self.cursors = cursors

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

    def get_many(self, ids: Sequence[str], *, with_vectors: bool = False) -> Fetched:
        """The items of ``ids`` in one read; an id the index does not hold is reported in ``missing``."""
        wanted = wanted_ids(ids)
        self._refresh()
        rows = {item_id: self._catalog.row_by_id.get(item_id, -1) for item_id in wanted}
        stored = self._store.get_rows([row for row in rows.values() if row >= 0], with_vectors=with_vectors)
        found = [stored[row] for row in rows.values() if row in stored]
        missing = tuple(item_id for item_id, row in rows.items() if row not in stored)
        vectors = tuple(s.vectors for s in found) if with_vectors else None
        return Fetched(tuple(s.item for s in found), missing, vectors)

    def hit_vectors(self, hits: Hits, target: str) -> tuple[np.ndarray | None, ...]:
        """Each hit's vector (:func:`~xmodal.results.hit_vector`), read in one go; None for a hit deleted
        meanwhile or without vectors."""
        rows = [self._catalog.row_by_id.get(hit_id, -1) for hit_id in hits.ids.tolist()]
        stored = self._store.get_rows([row for row in rows if row >= 0], with_vectors=True)
        sources = hits.provenance or ("",) * len(hits)
        return tuple(
            hit_vector(stored[row].vectors, source, str(target)) if row in stored else None
            for row, source in zip(rows, sources, strict=True)
        )

    # -- pages ----------------------------------------------------------------------------------
    def resume(self, scope: str, cursor: str | None, offset: int) -> int:
        """The offset a search starts at: ``offset``, or the one its ``cursor`` holds (not both)."""
        if cursor is None:
            return offset
        if offset:
            raise ValidationError("cursor", "cannot be combined with an offset", "drop offset: the cursor holds it")
        return self.cursors.read(cursor, scope)

    def next_page(self, scope: str, offset: int, k: int, returned: int) -> str | None:
        """The cursor of the page after one of ``k`` hits from ``offset`` that returned ``returned``: None when
        it came back short (no more hits) or the next page would pass :data:`MAX_K`."""
        start = offset + k
        return self.cursors.issue(scope, start) if returned >= k and start + k <= MAX_K else None

    def scroll(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        with_vectors: bool = False,
        strict: bool = False,
    ) -> Page:
        """A page of the items that match ``filters`` (every item without), in row order, from ``cursor``."""
        check_limit(limit)
        rows = self.matching(filters, strict=strict)  # the filter checked first (its depth too)
        scope = scope_of("scroll", dict(filters or {}), strict)
        after = -1 if cursor is None else self.cursors.read(cursor, scope)
        start = int(np.searchsorted(rows, after, side="right"))
        page = rows[start : start + limit].tolist()
        stored = self._store.get_rows(page, with_vectors=with_vectors)
        found = [stored[row] for row in page if row in stored]
        more = start + limit < len(rows)
        return Page(
            tuple(s.item for s in found),
            self.cursors.issue(scope, page[-1]) if more else None,
            tuple(s.vectors for s in found) if with_vectors else None,
        )

    def matching(self, filters: Mapping[str, Any] | None, *, strict: bool = False) -> np.ndarray:
        """The sorted rows of the items that match ``filters`` (every item without), caught up first."""
        self._refresh()
        with self._lock.read():
            if not filters:  # every row: the attribute table is not needed (nor built)
                return np.sort(self._catalog.rows())
            rows = self._catalog.attributes.match(filters, strict=strict)
            return np.sort(self._catalog.rows()) if rows is None else rows

    def iterate(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        batch: int = 2000,
        with_vectors: bool = False,
        strict: bool = False,
    ) -> Iterator[list[StoredItem]]:
        """The items that match ``filters`` (matched once, at the start), in row order, ``batch`` at a time;
        an item deleted meanwhile is left out, an item added meanwhile is not included."""
        rows = self.matching(filters, strict=strict).tolist()
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            stored = self._store.get_rows(chunk, with_vectors=with_vectors)
            yield [stored[row] for row in chunk if row in stored]

    # -- writes -------------------------------------------------------------------------------
    def delete_where(self, filters: Mapping[str, Any], *, strict: bool = False, purge_feedback: bool = False) -> int:
        """Delete every item that matches ``filters`` (their segments with them); how many matched."""
        check_delete_filter(filters)
        with self._writing:  # nothing is written between the match and the delete
            self._refresh()
            with self._lock.read():
                rows = self._catalog.attributes.match(filters, strict=strict)
                ids = [self._catalog.id_by_row[int(row)] for row in (rows if rows is not None else ())]
            return self._delete(ids, purge_feedback=purge_feedback) if ids else 0

    def clear(self, *, purge_feedback: bool = False) -> int:
        """Delete every item; how many there were."""
        with self._writing:
            self._refresh()
            with self._lock.read():
                ids = list(self._catalog.row_by_id)
            return self._delete(ids, purge_feedback=purge_feedback) if ids else 0

    def update_attributes(self, item_id: str, attributes: Mapping[str, Any], *, merge: bool = True) -> Item:
        """Update an item's attributes, keeping its vectors as stored; the updated item."""
        with self._writing:
            stored = self.stored(item_id)
            item = updated_item(stored.item, attributes, merge=merge)
            self._commit([(item, stored.vectors)])
        return item
