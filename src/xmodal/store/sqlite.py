"""The durable store: SQLite in WAL mode with ``synchronous=FULL``, the source of truth.

Items, their vectors and the engine's settings live here; a write acknowledged by
:meth:`SQLiteStore.put` is committed and survives ``kill -9``. Every change appends to a
``changes`` log, so derived indexes checkpointed at sequence *s* catch up by replaying the
changes after *s* instead of rebuilding. The full-text index (:mod:`.fulltext`) is not derived
data of that kind: it is written in the item's own transaction.

Schema versions: 1 had no full-text index; 2 adds it; 3 keeps an item's media by name (a ``media``
JSON column replacing the use of ``image``) and its segment fields (``parent``, indexed, and ``span``).
An older store is upgraded in place when it opens, in one transaction: the full-text index is built
from the items (from 1, ``fulltext_migrated`` recorded in ``meta``), the new columns are added and each
``image`` becomes ``media.image`` (``media_migrated``); a store written by a newer xmodal is refused.

Deleting an item deletes its segments (the items whose ``parent`` it is, and theirs) in the same
transaction; the change log records every deleted row, so every follower removes them.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, StorageError, ValidationError
from ..records import Item, Modality, Span, VectorKind
from . import audit
from .audit import AuditEntry
from .epoch import ANY_EPOCH, EPOCH_KEY, moved
from .fulltext import META_KEY as FULLTEXT_KEY
from .fulltext import FullText, vocabulary
from .health import GuardedLock, corrupt_error, integrity_problems, is_corrupt
from .inuse import open_shared
from .readers import Readers
from .space import connect, create_tables, disk_full, space_guard

SCHEMA_VERSION = 3
UPGRADABLE = (1, 2)  # versions upgraded in place when the store opens
#: Stores up to this size get ``PRAGMA quick_check`` when they open (about 20k items with 384-d vectors).
QUICK_CHECK_BYTES = 64 * 1024 * 1024
log = logging.getLogger(__name__)

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    attributes TEXT NOT NULL,
    media TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    parent TEXT,
    span TEXT
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
    + audit.SCHEMA
)


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item with its row number (the label used by the vector indexes) and its vectors."""

    row: int
    item: Item
    vectors: dict[str, np.ndarray]  # by vector kind


@dataclass(frozen=True, slots=True)
class Erased:
    """What a delete removed: the rows and ids (segments included), how many of the ids asked existed, and
    the media references the deleted items held."""

    rows: list[int]
    ids: list[str]
    asked: int
    media: list[str]


@dataclass(frozen=True, slots=True)
class CatalogRows:
    """Every item's id, row and filter fields, in row order: what the engine's catalog loads when it opens.

    ``fields[i]`` is the item's filter fields (as :meth:`Item.filter_fields`) still encoded, so that loading
    parses nothing; ``decode`` turns one into the fields. Equal encodings decode to equal fields.
    """

    ids: list[str]
    rows: list[int]
    fields: list[str]
    decode: Callable[[str], dict[str, Any]]


def decode_filter_fields(encoded: str) -> dict[str, Any]:
    """The filter fields of a :meth:`SQLiteStore.catalog_rows` encoding: the attributes, plus ``parent``
    and the span's position where set."""
    if not encoded.startswith("["):  # attributes only (an object)
        attributes, parent, span = encoded, None, None
    else:
        attributes, parent, span = json.loads(encoded)
    fields: dict[str, Any] = json.loads(attributes)
    if parent is not None:
        fields["parent"] = parent
    if span is not None:
        parsed = Span.parse(json.loads(span))
        if parsed is not None:
            fields["span"] = parsed.position
    return fields


class SQLiteStore:
    """Items, vectors, settings and the change log in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with space_guard(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        #: The vector epoch this process encodes for (set by the engine from meta ``vectors_epoch``): a put
        #: commits only while the store is still at it. Unset, puts are not checked.
        self.epoch: object = ANY_EPOCH
        self._lock = GuardedLock(path)  # a damaged page met by any statement is a StorageError saying what to do
        self._use = open_shared(path.parent)  # the folder is in use: `xmodal restore` will not replace it meanwhile
        try:
            #: True when the disk was too full to open the store read-write (:mod:`.space`): reads work, and
            #: the first write reconnects read-write or is a :class:`~xmodal.errors.DiskFull`.
            self._db, self.read_only = connect(path)
        except sqlite3.DatabaseError as exc:
            self._released()
            raise self._unreadable(exc) from exc
        except sqlite3.Error as exc:
            self._released()
            raise StorageError(f"{path}: not a readable xmodal store ({exc})") from exc
        try:
            self._open()
        except BaseException:
            self._db.close()
            self._released()
            raise
        #: searches read the full-text index on connections of their own (:mod:`.readers`)
        self.readers = Readers(path, prepare=vocabulary)
        self.fulltext = FullText(self._db, self._lock, readers=self.readers)

    def _unreadable(self, exc: sqlite3.DatabaseError) -> StorageError:
        if is_corrupt(exc) and self.path.is_file() and self.path.stat().st_size:
            return corrupt_error(self.path, exc)
        return StorageError(f"{self.path}: not a readable xmodal store ({exc})")

    def _open(self) -> None:
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if not self.read_only:  # read-only: the tables exist, or the write that needs them says the disk is full
                with self._lock:
                    self._create_tables()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, StorageError):
                raise
            raise self._unreadable(exc) from exc
        self._quick_check()
        with self._lock:
            self._check_schema()

    def _create_tables(self) -> None:
        """The tables that are missing; a new file gets them in one transaction."""
        create_tables(self._db, _SCHEMA, new=not self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])

    def _writable(self) -> None:
        """Before a write: a store opened read-only on a full disk refuses it with a
        :class:`~xmodal.errors.DiskFull` (SQLite shares the read-only shared-memory index with every
        connection of the process, so only a fresh open writes again)."""
        if self.read_only:
            raise disk_full(self.path.parent, "the store was opened read-only for lack of space", reopen=True)

    def _quick_check(self) -> None:
        """``PRAGMA quick_check`` when the file is at most :data:`QUICK_CHECK_BYTES` (it reads every page:
        about 60 ms for 20k items, 0.33 s for 100k); a larger store is checked by ``xmodal check``, and a
        damaged page is reported when a statement first reads it (see :mod:`.health`)."""
        if self.path.stat().st_size <= QUICK_CHECK_BYTES:
            problems = integrity_problems(self._db, limit=3)
            if problems:
                raise corrupt_error(self.path, "; ".join(problems))

    def integrity(self, *, full: bool = False) -> list[str]:
        """What SQLite's ``quick_check`` (``integrity_check`` with ``full``) finds wrong; empty when sound."""
        with self._lock:
            return integrity_problems(self._db, full=full)

    def _check_schema(self) -> None:
        """Refuse a newer store; create or upgrade the full-text index where it is missing or stale."""
        version = self._refuse_newer(self.get_meta("schema_version"))
        if version == SCHEMA_VERSION and self.get_meta(FULLTEXT_KEY) == FullText.analyzer() and self._has_columns():
            return  # the common case writes nothing
        with self._lock:
            self._writable()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._upgrade(self._refuse_newer(self.get_meta("schema_version")))  # another process may have
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _refuse_newer(self, version: Any) -> Any:
        if version is not None and version != SCHEMA_VERSION and version not in UPGRADABLE:
            raise StorageError(
                f"{self.path}: store schema version {version}, this xmodal reads {SCHEMA_VERSION}; "
                "re-index the catalog into a new folder"
            )
        return version

    def _columns(self) -> set[str]:
        return {str(r[1]) for r in self._db.execute("PRAGMA table_info(items)")}

    def _has_columns(self) -> bool:
        with self._lock:
            return {"media", "parent", "span"} <= self._columns()

    def _upgrade(self, version: Any) -> None:
        """Inside a transaction: add the media and segment columns, create the full-text tables and
        (re)build them from the items if needed."""
        self._upgrade_media(version)
        FullText.create(self._db)
        if version == SCHEMA_VERSION and self.get_meta(FULLTEXT_KEY) == FullText.analyzer():
            return
        if version == 2 and self.get_meta(FULLTEXT_KEY) == FullText.analyzer():
            self.set_meta("schema_version", SCHEMA_VERSION)  # the full-text index is current: nothing to build
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

    def _upgrade_media(self, version: Any) -> None:
        """Schema 3: the ``media``, ``parent`` and ``span`` columns, the parent index, and each stored
        ``image`` moved to ``media.image`` (version 1 and 2 stores)."""
        columns = self._columns()
        for name in ("media", "parent", "span"):
            if name not in columns:
                self._db.execute(f"ALTER TABLE items ADD COLUMN {name} TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS items_parent ON items(parent)")
        if "image" in columns:
            moved = self._db.execute(
                "UPDATE items SET media = json_object('image', image), image = NULL WHERE image IS NOT NULL"
            ).rowcount
            if version is not None and version != SCHEMA_VERSION:
                self.set_meta("media_migrated", {"from_schema": version, "images": moved, "at": time.time()})
                log.info("%s: moved %d images to media (schema %s -> %d)", self.path, moved, version, SCHEMA_VERSION)

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

    def _commit(self) -> None:
        """Commit an item write (the full-text index's statistics count it once it is in)."""
        self.fulltext.committing()
        self._db.execute("COMMIT")
        self.fulltext.ended(committed=True)

    def _rollback(self) -> None:
        """End the failed transaction, if SQLite has not ended it already (it does on some errors)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if hasattr(self, "fulltext"):
            self.fulltext.ended(committed=False)

    def close(self) -> None:
        self.fulltext.close()
        self.readers.close()
        with self._lock:
            self._db.close()
        self._released()

    def _released(self) -> None:
        if self._use is not None:
            self._use.release()

    # -- settings ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._writable()
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- writes -----------------------------------------------------------------------------
    def put(self, entries: Sequence[tuple[Item, Mapping[str, np.ndarray]]]) -> list[int]:
        """Upsert items with their vectors in one transaction; returns their rows."""
        rows = []
        with self._lock:
            self._writable()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self.fulltext.begin()
                self._check_epoch()
                texts = []
                for item, vectors in entries:
                    rows.append(self._put_one(item, vectors))
                    texts.append((rows[-1], item.title, item.text))
                self.fulltext.put_many(texts)  # the batch's full-text rows in a few statements
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return rows

    def _check_epoch(self) -> None:
        """Inside a write: refuse vectors made by an encoder the index has since switched away from
        (``xmodal reindex --switch`` committed by another process after this one opened the store)."""
        if moved(self.epoch, lambda: self._db.execute("SELECT value FROM meta WHERE key = ?", (EPOCH_KEY,)).fetchone()):
            raise ConfigError(
                f"{self.path.parent}: the index switched to another encoder (xmodal reindex --switch) since this "
                "process opened it; nothing was written: restart this process (server or command) to use the new one"
            )

    def _put_one(self, item: Item, vectors: Mapping[str, np.ndarray]) -> int:
        refs = {name: ref for name, ref in item.media.items() if isinstance(ref, str)}  # bytes are kept by then
        found = self._db.execute("SELECT row, created_at FROM items WHERE id = ?", (item.id,)).fetchone()
        values = (
            item.modality.value,
            item.title,
            item.text,
            json.dumps(dict(item.attributes)),
            json.dumps(refs) if refs else None,
            item.parent,
            json.dumps(item.span.to_dict()) if item.span is not None else None,
            item.updated_at,
        )
        if found is None:
            cur = self._db.execute(
                "INSERT INTO items (id, modality, title, text, attributes, media, parent, span, updated_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.id, *values, item.created_at),
            )
            row = int(cur.lastrowid or 0)
        else:
            row = int(found[0])
            self._db.execute(
                "UPDATE items SET modality=?, title=?, text=?, attributes=?, media=?, parent=?, span=?, updated_at=?"
                " WHERE row=?",
                (*values, row),
            )
            self._db.execute("DELETE FROM vectors WHERE row = ?", (row,))
        self._db.executemany(
            "INSERT INTO vectors VALUES (?, ?, ?)",
            [
                (row, check_kind(kind), np.ascontiguousarray(vec, dtype=np.float32).tobytes())
                for kind, vec in vectors.items()
            ],
        )
        self._db.execute("INSERT INTO changes (row, op) VALUES (?, 'put')", (row,))
        return row

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete items by id, with their segments, in one transaction; returns every row deleted."""
        return self.delete_tree(ids)[0]

    def delete_tree(self, ids: Sequence[str]) -> tuple[list[int], int]:
        """Delete items by id and, in the same transaction, their segments (items whose ``parent`` is a
        deleted id, at any depth); each deleted row is a ``delete`` in the change log. Returns the rows
        deleted and how many of ``ids`` existed."""
        erased = self.erase(ids)
        return erased.rows, erased.asked

    def erase(self, ids: Sequence[str], entry: AuditEntry | None = None) -> Erased:
        """:meth:`delete_tree`, recording ``entry`` in the audit log in the same transaction; returns what
        was removed, with the media references the deleted items held. With ``secure_delete`` on, the pages
        freed are zeroed in the file (the full-text index's own postings: :meth:`scrub`)."""
        rows: list[int] = []
        deleted: list[str] = []
        media: set[str] = set()
        asked_ids = list(dict.fromkeys(ids))
        with self._lock:
            self._writable()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self.fulltext.begin()
                found = self._rows_of(asked_ids)
                asked = len(found)
                done: set[str] = set()
                while found:
                    for row, item_id in found:
                        media.update(self._media_of(row))
                        self._db.execute("DELETE FROM items WHERE row = ?", (row,))
                        self.fulltext.remove(row)
                        self._db.execute("INSERT INTO changes (row, op) VALUES (?, 'delete')", (row,))
                        rows.append(row)
                        deleted.append(item_id)
                        done.add(item_id)
                    parents = [item_id for _, item_id in found]
                    found = [(r, i) for r, i in self._children_of(parents) if i not in done]
                if entry is not None:
                    audit.record(self._db, entry, asked_ids, deleted)
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return Erased(rows, deleted, asked, sorted(media))

    def _media_of(self, row: int) -> list[str]:
        found = self._db.execute("SELECT media FROM items WHERE row = ?", (row,)).fetchone()
        refs = json.loads(found[0]) if found and found[0] else {}
        return [str(ref) for ref in refs.values() if isinstance(ref, str)]

    def media_in_use(self, refs: Sequence[str]) -> set[str]:
        """Which of the media references ``refs`` some item still holds (media are shared by content)."""
        if not refs:
            return set()
        wanted = set(refs)
        with self._lock:
            cur = self._db.execute(
                "SELECT DISTINCT j.value FROM items, json_each(items.media) AS j WHERE items.media IS NOT NULL"
            )
            return {str(v) for (v,) in cur if v in wanted}

    def scrub(self) -> None:
        """Leave no trace of deleted items in the file: merge the full-text index's segments (an FTS5 delete
        only adds a tombstone beside the old postings) with ``secure_delete`` zeroing the pages freed, then
        copy the write-ahead log into the database and truncate it (the log holds the old pages' images)."""
        with self._lock:
            self._writable()
            self.fulltext.optimize()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of the admin audit log, newest first (:mod:`.audit`)."""
        with self._lock:
            return audit.entries(self._db, limit)

    def _rows_of(self, ids: Sequence[str]) -> list[tuple[int, str]]:
        out = []
        for item_id in ids:
            hit = self._db.execute("SELECT row FROM items WHERE id = ?", (item_id,)).fetchone()
            if hit is not None:
                out.append((int(hit[0]), item_id))
        return out

    def _children_of(self, parents: Sequence[str]) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for start in range(0, len(parents), 500):
            chunk = list(parents[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT row, id FROM items WHERE parent IN ({marks}) ORDER BY row"
            out.extend((int(r), str(i)) for r, i in self._db.execute(query, chunk))
        return out

    # -- reads ------------------------------------------------------------------------------
    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchone()[0]

    def last_seq(self) -> int:
        with self._lock:
            seq = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
            self.fulltext.stats.seen(seq)  # a search's refresh reads it first: its full-text statistics' check
            return seq

    def changes_since(self, seq: int) -> list[tuple[int, str]]:
        """(row, op) of every change after ``seq``, oldest first."""
        with self._lock:
            cur = self._db.execute("SELECT row, op FROM changes WHERE seq > ? ORDER BY seq", (seq,))
            return [(int(r), str(op)) for r, op in cur]

    def count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM items"))

    def vector_rows(self) -> dict[str, np.ndarray]:
        """The rows holding a vector of each kind, sorted (``xmodal check`` compares them with the backend)."""
        found: dict[str, list[int]] = {}
        with self._lock:
            for kind, row in self._db.execute("SELECT kind, row FROM vectors ORDER BY kind, row"):
                found.setdefault(str(kind), []).append(int(row))
        return {kind: np.asarray(rows, np.int64) for kind, rows in found.items()}

    def counts_by_modality(self) -> dict[str, int]:
        with self._lock:
            cur = self._db.execute("SELECT modality, COUNT(*) FROM items GROUP BY modality ORDER BY modality")
            return {str(m): int(n) for m, n in cur}

    def segment_counts_by_modality(self) -> dict[str, int]:
        with self._lock:
            cur = self._db.execute(
                "SELECT modality, COUNT(*) FROM items WHERE parent IS NOT NULL GROUP BY modality ORDER BY modality"
            )
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

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) by row, read alone (no text, attributes or vectors)."""
        return {int(r): (float(c), str(m)) for r, c, m in self._columns_of(rows, "created_at, modality")}

    def item_texts(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, text) by row, read alone (no attributes, media or vectors)."""
        return {int(r): (str(t or ""), str(x or "")) for r, t, x in self._columns_of(rows, "title, text")}

    def _columns_of(self, rows: Sequence[int], columns: str) -> list[tuple[Any, ...]]:
        """``(row, *columns)`` of the items table for each of ``rows`` that exists, read 500 rows a query."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), 500):
            chunk = list(rows[start : start + 500])
            sql = f"SELECT row, {columns} FROM items WHERE row IN ({','.join('?' * len(chunk))})"
            with self._lock:
                out.extend(self._db.execute(sql, chunk).fetchall())
        return out

    def catalog_rows(self) -> CatalogRows:
        """Every item's id, row and encoded filter fields, in row order (one query; nothing parsed): the
        ``attributes`` JSON as stored, or ``[attributes, parent, span]`` as JSON for a segment."""
        with self._lock:
            records = self._db.execute(
                "SELECT id, row, CASE WHEN parent IS NULL AND span IS NULL THEN attributes"
                " ELSE json_array(attributes, parent, span) END FROM items ORDER BY row"
            ).fetchall()
        return CatalogRows(
            [r[0] for r in records], [r[1] for r in records], [r[2] for r in records], decode_filter_fields
        )

    def iter_all(self, batch: int = 2000, *, after: int = 0, with_vectors: bool = True) -> Iterator[StoredItem]:
        """Every item (with its vectors, unless not ``with_vectors``) of a row above ``after``, in row order
        (used to rebuild derived indexes, and by ``xmodal reindex`` to resume)."""
        last = after
        while True:
            chunk = list(self._select("WHERE row > ? ORDER BY row LIMIT ?", (last, batch), with_vectors))
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].row

    def _select(self, where: str, params: Sequence[Any], with_vectors: bool = True) -> Iterator[StoredItem]:
        with self._lock:
            records = self._db.execute(
                "SELECT row, id, modality, title, text, attributes, media, created_at, updated_at, parent, span"
                f" FROM items {where}",
                tuple(params),
            ).fetchall()
            rows = [r[0] for r in records]
            vectors: dict[int, dict[str, np.ndarray]] = {r: {} for r in rows}
            if with_vectors and rows:
                marks = ",".join("?" * len(rows))
                query = f"SELECT row, kind, vector FROM vectors WHERE row IN ({marks})"
                for row, kind, blob in self._db.execute(query, rows):
                    vectors[row][_kind(kind)] = np.frombuffer(blob, dtype=np.float32)
        for row, id_, modality, title, text, attrs, media, created, updated, parent, span in records:
            item = Item(
                id_,
                Modality.unchecked(modality),
                title,
                text,
                json.loads(attrs),
                None,
                created,
                updated,
                media=json.loads(media) if media else {},
                parent=parent,
                span=Span.parse(json.loads(span)) if span else None,
            )
            yield StoredItem(row, item, vectors[row])


_KIND = re.compile(r"[A-Za-z0-9_.:+-]{1,128}")


def check_kind(kind: object) -> str:
    """A vector kind name as stored: a string of letters, digits and ``_.:+-`` (e.g. ``text``)."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValidationError(
            "vector kind", f"{kind!r} is not a vector kind name", "use letters, digits and _.:+- (e.g. 'text')"
        )
    return str(kind)


def _kind(name: str) -> str:
    """A stored vector kind: the :class:`VectorKind` member when it is a known one (equal to its string)."""
    try:
        return VectorKind(name)
    except ValueError:
        return name
