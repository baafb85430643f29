"""The ``postgres`` store: items, vectors, settings, the change log and the full-text index in PostgreSQL,
shared by any number of xmodal servers and CLI writers.

It implements :class:`~xmodal.store.base.Store` as :class:`~xmodal.store.sqlite.SQLiteStore` does, in the
tables of one PostgreSQL schema (``xmodal`` by default, so several indexes share a database): ``meta``,
``items``, ``vectors`` (float32 bytes per item and kind, so any vector backend can be rebuilt), ``changes``
and the full-text tables (:mod:`.postgres_fulltext`). Each write is one transaction; writers take a
transaction-level advisory lock first, so change-log sequence numbers are committed in order (a reader that
has seen sequence *s* has seen every change before it) and two servers writing the same new id agree on its
row. Each commit sends ``NOTIFY`` on the schema's channel with its last sequence: :meth:`PostgresStore.listen`
calls back on every server at once, and the engine catches up then rather than on the next read.

Connections: the threads of a process share a bounded pool (:mod:`.postgres_pool`; ``pool_size`` and
``pool_timeout`` in the URL); each call borrows one connection for its statement or transaction. The listener
keeps a connection of its own.

Failures: a server that cannot be reached, is too old (:data:`MIN_SERVER_VERSION`) or refuses the login is a
:class:`~xmodal.errors.StorageError` naming the server and the fix; so is a pool whose every connection stayed
busy past ``pool_timeout`` (naming both settings). A connection lost mid-call (a restart,
a network cut) is retried on a new connection with bounded backoff (``retries`` attempts); a write is
retried whole (a transaction either committed or left nothing; a write whose commit answer was lost is
applied again, which an upsert or a delete tolerates), and past the bound the caller gets a StorageError
saying the write was not acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import ConfigError, MissingDependency, StorageError, ValidationError
from ..records import Item, Modality, Span
from .audit import AuditEntry
from .epoch import ANY_EPOCH, EPOCH_KEY, moved
from .postgres_fulltext import SCHEMA as FULLTEXT_SCHEMA
from .postgres_fulltext import PostgresFullText
from .postgres_pool import POOL_SIZE, POOL_TIMEOUT_S, PgPool, Unreachable, split_pool_options
from .sqlite import (
    SCHEMA_VERSION,
    CatalogRows,
    Erased,
    StoredItem,
    _kind,
    check_kind,
    decode_filter_fields,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: PostgreSQL 12 or later (generated columns, ``pg_notify`` in transactions, ``unnest`` of several arrays)
MIN_SERVER_VERSION = 120000
RETRIES = 5
#: Notice topics besides the change log's, each on channel ``xmodal_<schema>_<topic>`` (:meth:`PostgresStore.follow`);
#: ``switch``: ``xmodal reindex --switch`` committed a new encoder and vector epoch
TOPICS = ("feedback", "state", "switch")
CONNECT_TIMEOUT_S = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    row BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    attributes TEXT NOT NULL,
    media TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    parent TEXT,
    span TEXT
);
CREATE INDEX IF NOT EXISTS items_parent ON items(parent);
CREATE TABLE IF NOT EXISTS vectors (
    row BIGINT NOT NULL REFERENCES items(row) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    vector BYTEA NOT NULL,
    PRIMARY KEY (row, kind)
);
CREATE TABLE IF NOT EXISTS changes (
    seq BIGSERIAL PRIMARY KEY,
    row BIGINT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('put', 'delete'))
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGSERIAL PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    asked TEXT NOT NULL,
    deleted TEXT NOT NULL,
    options TEXT NOT NULL
)
"""
_COLUMNS = "row, id, modality, title, text, attributes, media, created_at, updated_at, parent, span"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingDependency("psycopg", "postgres") from None
    return psycopg


def redact(dsn: str) -> str:
    """``dsn`` without its password (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore:
    """Items, vectors, settings and the change log in one schema of a PostgreSQL database."""

    def __init__(
        self,
        dsn: str,
        schema: str = "xmodal",
        *,
        retries: int = RETRIES,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        pool_size: int | None = None,
        pool_timeout: float | None = None,
    ) -> None:
        self._pg = _psycopg()
        if not schema.isidentifier() or schema.lower() != schema:
            raise StorageError(f"postgres schema {schema!r}: use lowercase letters, digits and _ (e.g. 'xmodal')")
        dsn, given = split_pool_options(dsn)  # the URL's pool_size / pool_timeout, unless given here
        self.dsn, self.schema, self.retries, self.connect_timeout = dsn, schema, retries, connect_timeout
        self.where = f"{redact(dsn)} (schema {schema})"
        #: The vector epoch this process encodes for (set by the engine from meta ``vectors_epoch``): a put
        #: commits only while the store is still at it. Unset, puts are not checked.
        self.epoch: object = ANY_EPOCH
        self.channel = f"xmodal_{schema}"
        self._lock = threading.RLock()  # the listener's bookkeeping; the calls themselves run side by side
        self._closed = False
        self._listeners: list[Callable[[int], None]] = []
        self._followers: dict[str, list[Callable[[], None]]] = {topic: [] for topic in TOPICS}
        self._listener: threading.Thread | None = None
        self._listen_db: Any = None
        self._write_key = zlib.crc32(f"xmodal.write.{schema}".encode())  # the advisory lock of writers
        self._create_schema()  # a server that is down, too old or refuses the login: a clear error now
        self._pool = PgPool(
            dsn,
            self.where,
            size=pool_size if pool_size is not None else given.get("pool_size", POOL_SIZE),
            timeout=pool_timeout if pool_timeout is not None else given.get("pool_timeout", POOL_TIMEOUT_S),
            connect_timeout=connect_timeout,
            configure=lambda db: db.execute(f"SET search_path TO {self.schema}"),
            probe=lambda: self._new_connection().close(),
        )
        try:
            self._open()
        except BaseException:
            self._pool.close()
            raise
        self.fulltext = PostgresFullText(self._query)

    @property
    def pool_size(self) -> int:
        """How many connections this process may hold (``pool_size``), the listener's not counted."""
        return self._pool.size

    # -- connections ---------------------------------------------------------------------------------
    def _new_connection(self, *, autocommit: bool = True) -> Any:
        pg = self._pg
        try:
            db = pg.connect(self.dsn, autocommit=autocommit, connect_timeout=max(1, int(self.connect_timeout)))
        except pg.OperationalError as exc:
            raise StorageError(
                f"{self.where}: cannot connect to PostgreSQL ({str(exc).strip()}); check that the server runs and "
                "that the URL's host, port, user, password and database are right"
            ) from exc
        version = int(db.info.server_version)
        if version < MIN_SERVER_VERSION:
            db.close()
            raise StorageError(
                f"{self.where}: PostgreSQL {version // 10000}.{version % 10000} is not supported; "
                f"use PostgreSQL {MIN_SERVER_VERSION // 10000} or later"
            )
        return db

    def _create_schema(self) -> None:
        db = self._new_connection()
        try:
            with db.transaction():  # two servers creating the schema at once: one waits for the other
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
                db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        finally:
            db.close()

    def _retrying(self, work: Callable[[Any], T], what: str) -> T:
        """``work(connection)`` on a connection of the pool; a lost connection is replaced and the work run
        again, up to :attr:`retries` times with exponential backoff (0.1 s doubling, at most 2 s)."""
        pg = self._pg
        if self._closed:
            raise StorageError(f"{self.where}: the store is closed")
        for attempt in range(self.retries + 1):
            try:
                with self._pool.connection() as db:
                    return work(db)
            except (pg.OperationalError, pg.InterfaceError) as exc:  # the connection (or the server) failed
                cause: BaseException = exc
            except pg.Error as exc:  # refused by the server (bad data, a constraint): nothing was written
                raise StorageError(f"{self.where}: {what} failed ({str(exc).strip()})") from exc  # (pool: rolled back)
            except Unreachable as exc:  # no connection within pool_timeout, none busy: the server is away
                if attempt == 0:  # a call that starts with the server away fails at once, as a connect would
                    raise StorageError(str(exc)) from None
                cause = exc
            if self._closed:
                raise StorageError(f"{self.where}: the store is closed") from cause
            self._pool.drop_broken()  # the other idle connections broke with it
            if attempt < self.retries:
                delay = min(2.0, 0.1 * 2**attempt)
                log.warning("%s: %s: connection lost (%s); retrying in %.1f s", self.where, what, cause, delay)
                time.sleep(delay)
        raise StorageError(
            f"{self.where}: {what} failed: the connection to PostgreSQL was lost {self.retries + 1} times "
            f"({str(cause).strip()}); nothing was acknowledged: check the server, then retry"
        ) from cause

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read statement."""
        return self._retrying(lambda db: list(db.execute(sql, tuple(params)).fetchall()), "a read")

    def _write(self, work: Callable[[Any], T], what: str = "a write", *, notify: bool = False) -> T:
        """``work(cursor)`` in one transaction, writers in turn (an advisory lock); ``notify``: the work appended
        to the change log, and a NOTIFY of its last change goes out at commit."""

        def run(db: Any) -> T:
            with db.transaction(), db.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
                out = work(cur)
                if notify:
                    after = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
                    cur.execute("SELECT pg_notify(%s, %s)", (self.channel, str(after)))
                return out

        return self._retrying(run, what)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read statement on a connection of the store's pool (retried on a lost connection); for the
        parts that keep their own tables in the store's schema (the feedback log, learned state)."""
        return self._query(sql, params)

    def write_locked(self, work: Callable[[Any], T], what: str, *, lock: str) -> T:
        """``work(cursor)`` in one transaction, after the advisory lock named ``lock`` (writers of one kind in
        turn, so a ``BIGSERIAL`` is committed in order); retried whole on a lost connection, like every write."""
        key = zlib.crc32(f"xmodal.{lock}.{self.schema}".encode())

        def run(db: Any) -> T:
            with db.transaction(), db.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                return work(cur)

        return self._retrying(run, what)

    def notify(self, cur: Any, topic: str, payload: str = "") -> None:
        """Send a notice on ``topic``'s channel at the commit of ``cur``'s transaction (:meth:`follow`)."""
        cur.execute("SELECT pg_notify(%s, %s)", (self._channel_of(topic), payload))

    def _channel_of(self, topic: str) -> str:
        if topic not in TOPICS:
            raise ValueError(f"unknown notice topic {topic!r}; one of {', '.join(TOPICS)}")
        return f"{self.channel}_{topic}"

    def _open(self) -> None:
        def create(cur: Any) -> None:
            for statement in (*_SCHEMA.split(";\n"), *FULLTEXT_SCHEMA.split(";\n")):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            found = cur.fetchone()
            if found is None:
                cur.execute("INSERT INTO meta VALUES ('schema_version', %s)", (json.dumps(SCHEMA_VERSION),))
            elif json.loads(found[0]) != SCHEMA_VERSION:
                raise StorageError(
                    f"{self.where}: store schema version {json.loads(found[0])}, this xmodal reads {SCHEMA_VERSION}; "
                    "use an xmodal of that version, or a new schema (?schema=NAME) and re-index the catalog"
                )

        self._write(create, "creating the tables")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listen_db, self._listen_db = self._listen_db, None
        self._pool.close()
        if listen_db is not None:
            try:
                listen_db.close()
            except Exception:  # noqa: BLE001 - closing the listener's connection ends its thread either way
                pass
        if self._listener is not None:
            self._listener.join(timeout=5)

    # -- LISTEN/NOTIFY -----------------------------------------------------------------------------
    def listen(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(seq)`` (on a thread of the store's) whenever any writer commits a change to this
        schema: every server learns of every write at once. A lost connection is reopened (the callback then
        gets the newest sequence, so nothing committed meanwhile is missed)."""
        with self._lock:
            self._listeners.append(callback)
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_loop, name="xmodal-pg-listen", daemon=True)
                self._listener.start()

    def follow(self, topic: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the store's listener thread) on every notice of ``topic`` (one of
        :data:`TOPICS`) from any server, and each time the listener (re)connects (it may have missed some)."""
        self._channel_of(topic)
        with self._lock:
            self._followers[topic].append(callback)
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_loop, name="xmodal-pg-listen", daemon=True)
                self._listener.start()

    def _listen_loop(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                db = self._new_connection()
                with self._lock:
                    if self._closed:
                        db.close()
                        return
                    self._listen_db = db
                topics = {self._channel_of(topic): topic for topic in TOPICS}
                for channel in (self.channel, *topics):
                    db.execute(f"LISTEN {channel}")
                self._tell(int(db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {self.schema}.changes").fetchone()[0]))
                for topic in TOPICS:
                    self._tell_followers(topic)
                delay = 0.1
                for note in db.notifies():
                    if note.channel == self.channel:
                        self._tell(int(note.payload))
                    elif note.channel in topics:
                        self._tell_followers(topics[note.channel])
            except Exception as exc:  # noqa: BLE001 - the listener outlives a restart of the server
                if self._closed:
                    return
                log.warning("%s: listening for changes: %s; reconnecting in %.1f s", self.where, exc, delay)
                time.sleep(delay)
                delay = min(2.0, delay * 2)

    def _tell(self, seq: int) -> None:
        for callback in list(self._listeners):
            try:
                callback(seq)
            except Exception:
                log.exception("%s: a change listener failed", self.where)

    def _tell_followers(self, topic: str) -> None:
        for callback in list(self._followers[topic]):
            try:
                callback()
            except Exception:
                log.exception("%s: a %s follower failed", self.where, topic)

    # -- settings ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        found = self._query("SELECT value FROM meta WHERE key = %s", (key,))
        return None if not found else json.loads(found[0][0])

    def set_meta(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        self._write(
            lambda cur: cur.execute(
                "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, text)
            ),
            "a settings write",
        )

    # -- writes ------------------------------------------------------------------------------------
    def put(self, entries: Sequence[tuple[Item, Mapping[str, np.ndarray]]]) -> list[int]:
        """Upsert items with their vectors in one transaction; returns their rows."""
        prepared = [(_no_nul(item), {check_kind(k): _blob(v) for k, v in vectors.items()}) for item, vectors in entries]
        return self._write(lambda cur: self._put(cur, prepared), "an add", notify=True) if prepared else []

    def _put(self, cur: Any, entries: Sequence[tuple[Item, Mapping[str, bytes]]]) -> list[int]:
        """The statements of :meth:`put`, each run for the whole batch (psycopg pipelines them)."""
        self._check_epoch(cur)
        cur.executemany(
            "INSERT INTO items (id, modality, title, text, attributes, media, parent, span, updated_at, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " modality = EXCLUDED.modality, title = EXCLUDED.title, text = EXCLUDED.text,"
            " attributes = EXCLUDED.attributes, media = EXCLUDED.media, parent = EXCLUDED.parent,"
            " span = EXCLUDED.span, updated_at = EXCLUDED.updated_at RETURNING row",
            [_values(item) for item, _ in entries],
            returning=True,
        )
        rows = []
        while True:
            rows.append(int(cur.fetchone()[0]))
            if not cur.nextset():
                break
        last = {row: vectors for row, (_, vectors) in zip(rows, entries, strict=True)}  # an id given twice: its last
        cur.execute("DELETE FROM vectors WHERE row = ANY(%s)", (list(last),))
        blobs = [(row, kind, blob) for row, vectors in last.items() for kind, blob in vectors.items()]
        if blobs:
            cur.executemany("INSERT INTO vectors VALUES (%s, %s, %s)", blobs)
        PostgresFullText.put(cur, [(row, item.title, item.text) for row, (item, _) in zip(rows, entries, strict=True)])
        cur.executemany("INSERT INTO changes (row, op) VALUES (%s, 'put')", [(row,) for row in rows])
        return rows

    def _check_epoch(self, cur: Any) -> None:
        """Inside a write (the writers' lock held): refuse vectors made by an encoder the index has since
        switched away from (``xmodal reindex --switch`` committed by another process after this one read the
        epoch)."""
        if moved(self.epoch, lambda: cur.execute("SELECT value FROM meta WHERE key = %s", (EPOCH_KEY,)).fetchone()):
            raise ConfigError(
                f"{self.where}: the index switched to another encoder (xmodal reindex --switch) since these items "
                "were encoded; nothing was written: retry (an engine on this store follows the switch itself)"
            )

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete items by id, with their segments, in one transaction; returns every row deleted."""
        return self.delete_tree(ids)[0]

    def delete_tree(self, ids: Sequence[str]) -> tuple[list[int], int]:
        """Delete items by id and their segments (at any depth) in one transaction; returns the rows deleted
        and how many of ``ids`` existed."""
        erased = self.erase(ids)
        return erased.rows, erased.asked

    def erase(self, ids: Sequence[str], entry: AuditEntry | None = None) -> Erased:
        """:meth:`delete_tree`, recording ``entry`` in the ``audit_log`` table in the same transaction; returns
        what was removed, with the media references the deleted items held."""
        wanted = list(dict.fromkeys(ids))

        def run(cur: Any) -> Erased:
            rows: list[int] = []
            deleted: list[str] = []
            media: set[str] = set()
            cur.execute("SELECT row, id, media FROM items WHERE id = ANY(%s) ORDER BY row", (wanted,))
            found = [(int(r), str(i), m) for r, i, m in cur.fetchall()]
            found.sort(key=lambda triple: wanted.index(triple[1]))
            asked, done = len(found), set[str]()
            while found:
                gone = [row for row, _, _ in found]
                for _, _, refs in found:
                    media.update(_media_refs(refs))
                cur.execute("DELETE FROM items WHERE row = ANY(%s)", (gone,))
                PostgresFullText.remove(cur, gone)
                cur.executemany("INSERT INTO changes (row, op) VALUES (%s, 'delete')", [(row,) for row in gone])
                rows += gone
                deleted += [item_id for _, item_id, _ in found]
                done.update(item_id for _, item_id, _ in found)
                parents = [item_id for _, item_id, _ in found]
                cur.execute("SELECT row, id, media FROM items WHERE parent = ANY(%s) ORDER BY row", (parents,))
                found = [(int(r), str(i), m) for r, i, m in cur.fetchall() if i not in done]
            if entry is not None:
                cur.execute(
                    "INSERT INTO audit_log (at, actor, action, asked, deleted, options) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        entry.at,
                        entry.actor,
                        entry.action,
                        json.dumps(wanted),
                        json.dumps(deleted),
                        json.dumps(dict(entry.options), sort_keys=True),
                    ),
                )
            return Erased(rows, deleted, asked, sorted(media))

        return self._write(run, "a delete", notify=True)

    def media_in_use(self, refs: Sequence[str]) -> set[str]:
        """Which of the media references ``refs`` some item still holds (media are shared by content)."""
        if not refs:
            return set()
        found = self._query(
            "SELECT DISTINCT j.value FROM items, jsonb_each_text(items.media::jsonb) AS j "
            "WHERE items.media IS NOT NULL AND j.value = ANY(%s)",
            (list(refs),),
        )
        return {str(value) for (value,) in found}

    def scrub(self) -> None:
        """Nothing to do from here: the server reclaims deleted rows' storage itself (autovacuum); a
        deployment that must leave no old tuple on disk runs ``VACUUM FULL`` on the schema (docs/privacy.md)."""

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of the admin audit log, newest first."""
        found = self._query(
            "SELECT seq, at, actor, action, asked, deleted, options FROM audit_log ORDER BY seq DESC LIMIT %s",
            (limit,),
        )
        return [
            {
                "seq": int(seq),
                "at": float(at),
                "actor": str(actor),
                "action": str(action),
                "asked": json.loads(asked),
                "deleted": json.loads(deleted),
                "options": json.loads(options),
            }
            for seq, at, actor, action, asked, deleted, options in found
        ]

    # -- reads -------------------------------------------------------------------------------------
    def last_seq(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def changes_since(self, seq: int) -> list[tuple[int, str]]:
        found = self._query("SELECT row, op FROM changes WHERE seq > %s ORDER BY seq", (seq,))
        return [(int(r), str(op)) for r, op in found]

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM items")[0][0])

    def vector_rows(self) -> dict[str, np.ndarray]:
        found: dict[str, list[int]] = {}
        for kind, row in self._query("SELECT kind, row FROM vectors ORDER BY kind, row"):
            found.setdefault(str(kind), []).append(int(row))
        return {kind: np.asarray(rows, np.int64) for kind, rows in found.items()}

    def counts_by_modality(self) -> dict[str, int]:
        found = self._query("SELECT modality, COUNT(*) FROM items GROUP BY modality ORDER BY modality")
        return {str(m): int(n) for m, n in found}

    def segment_counts_by_modality(self) -> dict[str, int]:
        found = self._query(
            "SELECT modality, COUNT(*) FROM items WHERE parent IS NOT NULL GROUP BY modality ORDER BY modality"
        )
        return {str(m): int(n) for m, n in found}

    def integrity(self, *, full: bool = False) -> list[str]:
        """What a structural check finds wrong: the full-text totals and sizes against the items (``full``:
        also every vector's length against its kind's)."""
        problems = []
        items, sized, (docs,) = (
            self.count(),
            int(self._query("SELECT COUNT(*) FROM fulltext_sizes")[0][0]),
            self._query("SELECT docs FROM fulltext_totals")[0],
        )
        if not items == sized == int(docs):
            problems.append(f"full-text index out of step: {items} items, {sized} sized, totals say {docs}")
        if full:
            found = self._query("SELECT kind, COUNT(DISTINCT length(vector)) FROM vectors GROUP BY kind")
            problems += [f"vectors of kind {k!r} have {n} different lengths" for k, n in found if int(n) > 1]
        return problems

    def get(self, item_id: str) -> StoredItem | None:
        found = self._select("WHERE id = %s", (item_id,))
        return found[0] if found else None

    def get_rows(self, rows: Sequence[int], with_vectors: bool = False) -> dict[int, StoredItem]:
        if not rows:
            return {}
        return {s.row: s for s in self._select("WHERE row = ANY(%s)", ([int(r) for r in rows],), with_vectors)}

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        if not rows:
            return {}
        found = self._query(
            "SELECT row, created_at, modality FROM items WHERE row = ANY(%s)", ([int(r) for r in rows],)
        )
        return {int(r): (float(c), str(m)) for r, c, m in found}

    def item_texts(self, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        if not rows:
            return {}
        found = self._query("SELECT row, title, text FROM items WHERE row = ANY(%s)", ([int(r) for r in rows],))
        return {int(r): (str(t or ""), str(x or "")) for r, t, x in found}

    def catalog_rows(self) -> CatalogRows:
        records = self._query(
            "SELECT id, row, CASE WHEN parent IS NULL AND span IS NULL THEN attributes"
            " ELSE json_build_array(attributes, parent, span)::text END FROM items ORDER BY row"
        )
        return CatalogRows(
            [str(r[0]) for r in records],
            [int(r[1]) for r in records],
            [str(r[2]) for r in records],
            decode_filter_fields,
        )

    def iter_all(self, batch: int = 2000, *, after: int = 0, with_vectors: bool = True) -> Iterator[StoredItem]:
        """Every item (with its vectors, unless not ``with_vectors``) of a row above ``after``, in row order."""
        last = after
        while True:
            chunk = self._select("WHERE row > %s ORDER BY row LIMIT %s", (last, batch), with_vectors)
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].row

    def _select(self, where: str, params: Sequence[Any], with_vectors: bool = True) -> list[StoredItem]:
        def run(db: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
            with db.transaction():  # one snapshot: the items and their vectors agree
                records = db.execute(f"SELECT {_COLUMNS} FROM items {where}", tuple(params)).fetchall()
                blobs = []
                if with_vectors and records:
                    rows = [int(r[0]) for r in records]
                    blobs = db.execute("SELECT row, kind, vector FROM vectors WHERE row = ANY(%s)", (rows,)).fetchall()
                return records, blobs

        records, blobs = self._retrying(run, "a read")
        vectors: dict[int, dict[str, np.ndarray]] = {int(r[0]): {} for r in records}
        for row, kind, blob in blobs:
            vectors[int(row)][_kind(kind)] = np.frombuffer(bytes(blob), dtype=np.float32)
        out = []
        for row, id_, modality, title, text, attrs, media, created, updated, parent, span in records:
            item = Item(
                id_,
                Modality.unchecked(modality),
                title,
                text,
                json.loads(attrs),
                None,
                float(created),
                float(updated),
                media=json.loads(media) if media else {},
                parent=parent,
                span=Span.parse(json.loads(span)) if span else None,
            )
            out.append(StoredItem(int(row), item, vectors[int(row)]))
        return out


def _no_nul(item: Item) -> Item:
    """``item``, whose title and text PostgreSQL can hold (its ``text`` type refuses the NUL character)."""
    for name, value in (("title", item.title), ("text", item.text)):
        if "\x00" in value:
            raise ValidationError(
                name, "holds a NUL character (\\x00), which PostgreSQL cannot store", "remove it", item=item.id
            )
    return item


def _values(item: Item) -> tuple[Any, ...]:
    refs = {name: ref for name, ref in item.media.items() if isinstance(ref, str)}  # bytes are kept by then
    return (
        item.id,
        item.modality.value,
        item.title,
        item.text,
        json.dumps(dict(item.attributes)),
        json.dumps(refs) if refs else None,
        item.parent,
        json.dumps(item.span.to_dict()) if item.span is not None else None,
        item.updated_at,
        item.created_at,
    )


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _media_refs(media: str | None) -> list[str]:
    """The media references of an item's ``media`` column (JSON: role to reference)."""
    refs = json.loads(media) if media else {}
    return [str(ref) for ref in refs.values() if isinstance(ref, str)] if isinstance(refs, dict) else []
