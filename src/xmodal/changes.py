"""One catch-up from the store's change log for every derived structure (indexes, caches, extensions).

A *follower* has ``on_put(stored)`` and ``on_delete(rows)``. :func:`replay` brings it from the store
sequence it reflects to the store's current one: the last change of each row wins, and a row put but
gone by the time it is read counts as deleted. Applying a change twice is harmless (puts replace,
deletes of absent rows are no-ops), which is what makes tailing the log from several processes safe:
the sequence recorded is read *before* the changes, so a change committed meanwhile is applied again
next time rather than missed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from .store.sqlite import StoredItem

BATCH = 2000


class ChangeSource(Protocol):
    """Where changes come from: the engine (or an :class:`~xmodal.extension.EngineView`)."""

    def last_seq(self) -> int: ...

    def changes_since(self, seq: int) -> list[tuple[int, str]]: ...

    def items_of(self, rows: Sequence[int], *, with_vectors: bool = False) -> dict[int, StoredItem]: ...

    def iter_items(self) -> Iterator[StoredItem]: ...


class Follower(Protocol):
    """A structure derived from the store, kept in step with its writes."""

    def on_put(self, stored: Sequence[StoredItem]) -> None: ...

    def on_delete(self, rows: Sequence[int]) -> None: ...


def replay(store: ChangeSource, since: int, *followers: Follower) -> int:
    """Apply the store's changes after ``since`` to each follower; returns the sequence now reflected."""
    last = store.last_seq()
    if last == since or not followers:
        return last
    if since <= 0:
        _rebuild(store, followers)
        return last
    latest = dict(store.changes_since(since))
    deleted = [row for row, op in latest.items() if op == "delete"]
    put = [row for row, op in latest.items() if op == "put"]
    for start in range(0, len(put), BATCH):
        chunk = put[start : start + BATCH]
        found = store.items_of(chunk, with_vectors=True)
        deleted += [row for row in chunk if row not in found]
        _put(followers, list(found.values()))
    if deleted:
        for follower in followers:
            follower.on_delete(deleted)
    return last


def _rebuild(store: ChangeSource, followers: Sequence[Follower]) -> None:
    batch: list[StoredItem] = []
    for stored in store.iter_items():
        batch.append(stored)
        if len(batch) >= BATCH:
            _put(followers, batch)
            batch = []
    _put(followers, batch)


def _put(followers: Sequence[Follower], stored: list[StoredItem]) -> None:
    if stored:
        for follower in followers:
            follower.on_put(stored)
