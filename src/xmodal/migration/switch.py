"""``xmodal reindex --switch``: the new vectors and encoder become the index's in one transaction.

Steps: replay the changes made since the new vectors were last brought up to date (outside any lock), then
one transaction on the store, writers waiting (SQLite: ``BEGIN IMMEDIATE`` on ``store.sqlite`` with
``next.sqlite`` attached; PostgreSQL: the store's write lock, then the reindex lock of :mod:`.pg_space`), that
replays the few changes committed since, replaces every vector with the new ones, and writes the encoder
setting, the new vector epoch (meta ``vectors_epoch``) and the stale markers (:mod:`xmodal.stale`). On
PostgreSQL the same transaction drops the next vector set's tables and sends the store's ``switch`` notice, on
which every server reopens on the new encoder (:meth:`xmodal.Engine.follow_switch`). The database's commit is
all or nothing, so a ``kill -9`` at any moment leaves the index on exactly one encoder: the old one (the next
vector set kept, ``--switch`` can be run again) or the new one (a folder's next vector set is removed by
whatever opens it next, if the kill came before that). Derived state follows the epoch: the engine discards a
vector checkpoint of another epoch (:mod:`xmodal.backends.epoch`), and a process still on the old encoder has
its writes refused.

``XMODAL_REINDEX_FAULT=<point>`` kills the process at a point (``prepared``, ``locked``, ``deleted``,
``copied``, ``written``, ``committed``; see :mod:`.faults`): the tests' way to check the promise above.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..encoders.identity import describe
from ..errors import ConfigError
from ..stale import KEY as STALE_KEY
from ..stale import markers_for_switch
from ..store.epoch import EPOCH_KEY
from ..store.postgres import PostgresStore
from ..store.sqlite import SQLiteStore
from .faults import fault
from .pg_space import PgNextSpace, PgSql, lock_key
from .space import NextSpace, Space, Sql, SqliteSql, blob, put_meta

#: Changes left to replay under the write lock after which they are replayed first, outside it.
LOCKED_TAIL = 256
Swapped = tuple[dict[str, Any], int, dict[str, Any]]


class Job(Protocol):
    """What the switch needs of a :class:`~xmodal.migration.reindex.Reindex`."""

    space: Space | None
    store: SQLiteStore | PostgresStore

    def status(self) -> dict[str, Any]: ...

    def tail(self, *, batch: int = ...) -> int: ...

    def run(self) -> dict[str, Any]: ...

    def encode_rows(
        self, rows: Sequence[int], *, batch: int = ...
    ) -> tuple[list[tuple[int, dict[str, np.ndarray]]], list[tuple[int, str, str]]]: ...


def switch(job: Job) -> dict[str, Any]:
    """Switch ``job``'s index to its new vectors and encoder (see the module notes)."""
    space = job.space
    if space is None:
        raise ConfigError("no reindex is under way: start one with `xmodal reindex --encoder NAME`")
    status = job.status()
    if not status["scanned"]:
        raise ConfigError(
            f"the new vectors are not complete ({status['done']} of {status['total']} items encoded): "
            "run `xmodal reindex` to finish them, then `xmodal reindex --switch`"
        )
    for _ in range(3):  # bring the new vectors up to date outside the lock: little is left for inside it
        if job.tail() < LOCKED_TAIL:
            break
    job.run()  # retries refused items
    failures = space.failures()
    if failures:
        row, item_id, reason = failures[0]
        raise ConfigError(
            f"the new encoder refused {len(failures)} item(s), e.g. {item_id!r}: {reason}; fix or delete them, "
            "run `xmodal reindex` (it tries them again), then --switch (or --abort to keep the current encoder)"
        )
    config = space.get("encoder")
    epoch = uuid.uuid4().hex
    space.set(epoch=epoch)
    fault("prepared")
    if isinstance(space, PgNextSpace) and isinstance(job.store, PostgresStore):
        old, late, stale = _in_postgres(job, job.store, space, config, epoch)
    elif isinstance(space, NextSpace) and isinstance(job.store, SQLiteStore):
        old, late, stale = _in_sqlite(job, job.store, space, config, epoch)
    else:  # pragma: no cover - a Reindex pairs each store with its own kind of space
        raise TypeError(f"no switch for a {type(space).__name__} beside a {type(job.store).__name__}")
    fault("committed")
    space.drop()
    return {
        "switched": True,
        "from": describe(old),
        "to": describe(config),
        "epoch": epoch,
        "late_changes": late,
        "stale": sorted(stale),
    }


def _in_sqlite(job: Job, store: SQLiteStore, space: NextSpace, config: dict[str, Any], epoch: str) -> Swapped:
    """The swap in one ``BEGIN IMMEDIATE`` transaction on ``store.sqlite``, ``next.sqlite`` attached."""
    db = sqlite3.connect(store.path, isolation_level=None, timeout=60)
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("ATTACH DATABASE ? AS next", (str(space.path),))
        db.execute("BEGIN IMMEDIATE")  # writers wait from here to the commit; readers never do
        try:
            swapped = _swap(SqliteSql(db), job, config, epoch, own="main.", nxt="next.")
            fault("written")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    return swapped


def _in_postgres(job: Job, store: PostgresStore, space: PgNextSpace, config: dict[str, Any], epoch: str) -> Swapped:
    """The swap in one PostgreSQL transaction under the store's write lock (writers wait; readers never do),
    which also drops the next vector set and tells every server (the ``switch`` notice, sent at the commit)."""

    def work(cur: Any) -> Swapped:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(store),))  # no build commits meanwhile
        db = PgSql(cur)
        swapped = _swap(db, job, config, epoch, own="", nxt="reindex_next_")
        space.drop_tables(db)
        store.notify(cur, "switch", epoch)
        fault("written")
        return swapped

    return store.write_locked(work, "switching the encoder (xmodal reindex --switch)", lock="write")


def _swap(db: Sql, job: Job, config: dict[str, Any], epoch: str, *, own: str, nxt: str) -> Swapped:
    """The statements of the switch, in the caller's transaction: the store's tables are ``own`` + name, the
    next vector set's ``nxt`` + name. Returns the old encoder's config, how many late changes were replayed
    and the stale markers written."""
    fault("locked")
    since = int(json.loads(db.execute(f"SELECT value FROM {nxt}meta WHERE key = 'tail_seq'")[0][0]))
    late = dict(db.execute(f"SELECT row, op FROM {own}changes WHERE seq > ? ORDER BY seq", (since,)))
    vectors, refused = job.encode_rows([row for row, op in late.items() if op == "put"])
    if refused:
        raise ConfigError(f"the new encoder refused item {refused[0][1]!r} written just now: {refused[0][2]}")
    db.execute(f"DELETE FROM {own}vectors")
    fault("deleted")
    db.execute(
        f"INSERT INTO {own}vectors (row, kind, vector) SELECT n.row, n.kind, n.vector FROM {nxt}vectors n"
        f" WHERE n.row IN (SELECT row FROM {own}items)"
    )
    db.executemany(f"DELETE FROM {own}vectors WHERE row = ?", [(row,) for row, _ in vectors])
    db.executemany(
        f"INSERT INTO {own}vectors VALUES (?, ?, ?)",
        [(row, kind, blob(v)) for row, by_kind in vectors for kind, v in by_kind.items()],
    )
    fault("copied")
    settings = json.loads(db.execute(f"SELECT value FROM {own}meta WHERE key = 'settings'")[0][0])
    old = settings["encoder"]
    settings["encoder"] = config
    found = db.execute(f"SELECT value FROM {own}meta WHERE key = ?", (STALE_KEY,))
    stale = {**(json.loads(found[0][0]) if found else {})}
    stale.update(markers_for_switch(_short(old), _short(config), settings["extensions"]))
    put_meta(db, f"{own}meta", {"settings": settings, EPOCH_KEY: epoch, STALE_KEY: stale})
    return old, len(late), stale


def _short(config: dict[str, Any]) -> str:
    return f"{config.get('name')} ({config.get('dim')} dimensions)"
