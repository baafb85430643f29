"""The durable store: SQLite in WAL mode with ``synchronous=FULL``, the source of truth.

Items, their vectors and the engine's settings live here; a write acknowledged by
:meth:`SQLiteStore.put` is committed and survives ``kill -9``. Every change appends to a
``changes`` log, so derived indexes checkpointed at sequence *s* catch up by replaying the
changes after *s* instead of rebuilding. The full-text index (:mod:`.fulltext`) is not derived
data of that kind: it is written in the item's own transaction.

Schema versions: 1 had no full-text index; 2 adds it. A version 1 store is upgraded when it opens
(the index is built from the items in one transaction, and ``fulltext_migrated`` is recorded in
``meta``); a store written by a newer xmodal is refused.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StorageError
from ..records import Item, Modality, VectorKind
from .fulltext import META_KEY as FULLTEXT_KEY
from .fulltext import FullText

SCHEMA_VERSION = 2
UPGRADABLE = (1,)  # versions upgraded in place when the store opens
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    attributes TEXT NOT NULL,
    image TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    row INTEGER NOT NULL REFERENCES items(row) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (row, kind)
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('put', 'delete'))
);
"""


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item with its row number (the label used by the vector indexes) and its vectors."""

    row: int
    item: Item
    vectors: dict[VectorKind, np.ndarray]


class SQLiteStore:
    """Items, vectors, settings and the change log in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path}: not a readable xmodal store ({exc})") from exc
        self._lock = threading.RLock()
        self._check_schema()
        self.fulltext = FullText(self._db, self._lock)

    def _check_schema(self) -> None:
        """Refuse a newer store; create or upgrade the full-text index where it is missing or stale."""
        version = self._refuse_newer(self.get_meta("schema_version"))
        if version == SCHEMA_VERSION and self.get_meta(FULLTEXT_KEY) == FullText.analyzer():
            return  # the common case writes nothing
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._upgrade(self._refuse_newer(self.get_meta("schema_version")))  # another process may have
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _refuse_newer(self, version: Any) -> Any:
        if version is not None and version != SCHEMA_VERSION and version not in UPGRADABLE:
            raise StorageError(
                f"{self.path}: store schema version {version}, this xmodal reads {SCHEMA_VERSION}; "
                "re-index the catalog into a new folder"
            )
        return version

    def _upgrade(self, version: Any) -> None:
        """Inside a transaction: create the full-text tables and (re)build them from the items if needed."""
        FullText.create(self._db)
        if version == SCHEMA_VERSION and self.get_meta(FULLTEXT_KEY) == FullText.analyzer():
            return
        start = time.perf_counter()
        n = FullText(self._db, self._lock).rebuild(self._texts())
        self.set_meta(FULLTEXT_KEY, FullText.analyzer())
        self.set_meta("schema_version", SCHEMA_VERSION)
        if version is not None:
            took = time.perf_counter() - start
            self.set_meta(
                "fulltext_migrated", {"from_schema": version, "items": n, "seconds": round(took, 3), "at": time.time()}
            )
            log.info(
                "%s: built the full-text index of %d items (schema %s -> %d)", self.path, n, version, SCHEMA_VERSION
            )

    def _texts(self) -> Iterator[tuple[int, str, str]]:
        """(row, title, text) of every item, in row order, read in batches."""
        last = 0
        while True:
            batch = self._db.execute(
                "SELECT row, title, text FROM items WHERE row > ? ORDER BY row LIMIT 2000", (last,)
            ).fetchall()
            if not batch:
                return
            yield from ((int(r), str(t), str(x)) for r, t, x in batch)
            last = int(batch[-1][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- settings ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- writes -----------------------------------------------------------------------------
    def put(self, entries: Sequence[tuple[Item, dict[VectorKind, np.ndarray]]]) -> list[int]:
        """Upsert items with their vectors in one transaction; returns their rows."""
        rows = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for item, vectors in entries:
                    rows.append(self._put_one(item, vectors))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows

    def _put_one(self, item: Item, vectors: dict[VectorKind, np.ndarray]) -> int:
        image = item.image if isinstance(item.image, str) else None
        found = self._db.execute("SELECT row, created_at FROM items WHERE id = ?", (item.id,)).fetchone()
        values = (item.modality.value, item.title, item.text, json.dumps(dict(item.attributes)), image, item.updated_at)
        if found is None:
            cur = self._db.execute(
                "INSERT INTO items (id, modality, title, text, attributes, image, updated_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.id, *values, item.created_at),
            )
            row = int(cur.lastrowid or 0)
        else:
            row = int(found[0])
            self._db.execute(
                "UPDATE items SET modality=?, title=?, text=?, attributes=?, image=?, updated_at=? WHERE row=?",
                (*values, row),
            )
            self._db.execute("DELETE FROM vectors WHERE row = ?", (row,))
        self._db.executemany(
            "INSERT INTO vectors VALUES (?, ?, ?)",
            [(row, kind.value, np.ascontiguousarray(vec, dtype=np.float32).tobytes()) for kind, vec in vectors.items()],
        )
        self.fulltext.put(row, item.title, item.text)
        self._db.execute("INSERT INTO changes (row, op) VALUES (?, 'put')", (row,))
        return row

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete items by id in one transaction; returns the rows that were deleted."""
        rows = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for item_id in ids:
                    found = self._db.execute("SELECT row FROM items WHERE id = ?", (item_id,)).fetchone()
                    if found is None:
                        continue
                    self._db.execute("DELETE FROM items WHERE row = ?", (found[0],))
                    self.fulltext.remove(int(found[0]))
                    self._db.execute("INSERT INTO changes (row, op) VALUES (?, 'delete')", (found[0],))
                    rows.append(int(found[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows

    # -- reads ------------------------------------------------------------------------------
    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchone()[0]

    def last_seq(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(seq), 0) FROM changes"))

    def changes_since(self, seq: int) -> list[tuple[int, str]]:
        """(row, op) of every change after ``seq``, oldest first."""
        with self._lock:
            cur = self._db.execute("SELECT row, op FROM changes WHERE seq > ? ORDER BY seq", (seq,))
            return [(int(r), str(op)) for r, op in cur]

    def count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM items"))

    def counts_by_modality(self) -> dict[str, int]:
        with self._lock:
            cur = self._db.execute("SELECT modality, COUNT(*) FROM items GROUP BY modality ORDER BY modality")
            return {str(m): int(n) for m, n in cur}

    def get(self, item_id: str) -> StoredItem | None:
        found = list(self._select("WHERE id = ?", (item_id,)))
        return found[0] if found else None

    def get_rows(self, rows: Sequence[int], with_vectors: bool = False) -> dict[int, StoredItem]:
        """Items by row (rows that no longer exist are absent from the result)."""
        out: dict[int, StoredItem] = {}
        for start in range(0, len(rows), 500):
            chunk = list(rows[start : start + 500])
            marks = ",".join("?" * len(chunk))
            out.update((s.row, s) for s in self._select(f"WHERE row IN ({marks})", chunk, with_vectors))
        return out

    def id_rows(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(id, row, attributes) of every item: what the engine keeps in memory."""
        with self._lock:
            records = self._db.execute("SELECT id, row, attributes FROM items ORDER BY row").fetchall()
        for id_, row, attrs in records:
            yield str(id_), int(row), json.loads(attrs)

    def iter_all(self, batch: int = 2000) -> Iterator[StoredItem]:
        """Every item with its vectors, in row order (used to rebuild derived indexes)."""
        last = 0
        while True:
            chunk = list(self._select("WHERE row > ? ORDER BY row LIMIT ?", (last, batch)))
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].row

    def _select(self, where: str, params: Sequence[Any], with_vectors: bool = True) -> Iterator[StoredItem]:
        with self._lock:
            records = self._db.execute(
                f"SELECT row, id, modality, title, text, attributes, image, created_at, updated_at FROM items {where}",
                tuple(params),
            ).fetchall()
            rows = [r[0] for r in records]
            vectors: dict[int, dict[VectorKind, np.ndarray]] = {r: {} for r in rows}
            if with_vectors and rows:
                marks = ",".join("?" * len(rows))
                query = f"SELECT row, kind, vector FROM vectors WHERE row IN ({marks})"
                for row, kind, blob in self._db.execute(query, rows):
                    vectors[row][VectorKind(kind)] = np.frombuffer(blob, dtype=np.float32)
        for row, id_, modality, title, text, attrs, image, created, updated in records:
            item = Item(id_, Modality(modality), title, text, json.loads(attrs), image, created, updated)
            yield StoredItem(row, item, vectors[row])
