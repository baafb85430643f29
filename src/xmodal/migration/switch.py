"""``xmodal reindex --switch``: the new vectors and encoder become the index's in one SQLite transaction.

Steps: replay the changes made since the new vectors were last brought up to date (outside any lock), then
one ``BEGIN IMMEDIATE`` transaction on ``store.sqlite`` (writers wait) that replays the few changes
committed since, replaces every vector with the new ones (copied from the attached ``next.sqlite``), and
writes the encoder setting, the new vector epoch (meta ``vectors_epoch``) and the stale markers
(:mod:`xmodal.stale`). SQLite's journal makes the commit all or nothing, so a ``kill -9`` at any moment
leaves the index on exactly one encoder: the old one (the next vector set kept, ``--switch`` can be run
again) or the new one (the next vector set is removed by whatever opens it next, if the kill came before
that). Derived state follows the epoch: the engine discards a vector checkpoint of another epoch
(:mod:`xmodal.backends.epoch`), and a process still running with the old encoder has its writes refused.

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
from ..store.sqlite import EPOCH_KEY, SQLiteStore
from .faults import fault
from .space import NextSpace

#: Changes left to replay under the write lock after which they are replayed first, outside it.
LOCKED_TAIL = 256


class Job(Protocol):
    """What the switch needs of a :class:`~xmodal.migration.reindex.Reindex`."""

    space: NextSpace | None
    store: SQLiteStore

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
    db = sqlite3.connect(job.store.path, isolation_level=None, timeout=60)
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("ATTACH DATABASE ? AS next", (str(space.path),))
        db.execute("BEGIN IMMEDIATE")  # writers wait from here to the commit; readers never do
        try:
            fault("locked")
            since = int(space.get("tail_seq"))
            late = dict(db.execute("SELECT row, op FROM main.changes WHERE seq > ? ORDER BY seq", (since,)).fetchall())
            vectors, refused = job.encode_rows([row for row, op in late.items() if op == "put"])
            if refused:
                raise ConfigError(f"the new encoder refused item {refused[0][1]!r} written just now: {refused[0][2]}")
            db.execute("DELETE FROM main.vectors")
            fault("deleted")
            db.execute(
                "INSERT INTO main.vectors (row, kind, vector) SELECT n.row, n.kind, n.vector FROM next.vectors n"
                " WHERE n.row IN (SELECT row FROM main.items)"
            )
            for row, by_kind in vectors:
                db.execute("DELETE FROM main.vectors WHERE row = ?", (row,))
                db.executemany(
                    "INSERT INTO main.vectors VALUES (?, ?, ?)",
                    [(row, kind, np.ascontiguousarray(v, np.float32).tobytes()) for kind, v in by_kind.items()],
                )
            fault("copied")
            settings = json.loads(db.execute("SELECT value FROM main.meta WHERE key = 'settings'").fetchone()[0])
            old = settings["encoder"]
            settings["encoder"] = config
            found = db.execute("SELECT value FROM main.meta WHERE key = ?", (STALE_KEY,)).fetchone()
            stale = {**(json.loads(found[0]) if found else {})}
            stale.update(markers_for_switch(_short(old), _short(config), settings["extensions"]))
            db.executemany(
                "INSERT OR REPLACE INTO main.meta VALUES (?, ?)",
                [("settings", json.dumps(settings)), (EPOCH_KEY, json.dumps(epoch)), (STALE_KEY, json.dumps(stale))],
            )
            fault("written")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    fault("committed")
    space.drop()
    return {
        "switched": True,
        "from": describe(old),
        "to": describe(config),
        "epoch": epoch,
        "late_changes": len(late),
        "stale": sorted(stale),
    }


def _short(config: dict[str, Any]) -> str:
    return f"{config.get('name')} ({config.get('dim')} dimensions)"
