"""The feedback log: impressions (what was shown for a query) and events (what the user did).

The tables live in the index's own ``store.sqlite`` next to the items, written through a second
connection in WAL mode with ``synchronous=FULL``: a call that returns has committed. Impressions logged
inside :meth:`FeedbackLog.batch` share one transaction (group commit: one fsync for many searches). Names follow
the User Behavior Insights (UBI) schema where they fit: a *query* has a ``query_id``, a
``client_id`` (the user), the ``user_query`` and the ids of the hits shown; an *event* has an
``action_name``, the ``object_id`` acted on and its ``position`` (1-based ordinal in the list shown).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, StorageError, ValidationError
from ..ltr.text import normalize_query
from ..provenance import Provenance, from_stored, to_stored
from ..store.health import GuardedLock, corrupt_error, is_corrupt
from ..store.readers import Readers
from ..store.space import connect, create_tables, disk_full

if TYPE_CHECKING:
    from ..store.postgres_state import SharedState

log = logging.getLogger(__name__)
FEEDBACK_SCHEMA_VERSION = 1
#: Event types and the reward each is worth to the learners (UBI ``action_name``).
EVENT_TYPES: Mapping[str, float] = {"click": 1.0, "like": 2.0, "add_to_cart": 3.0, "play": 1.0}
#: A user's history (:meth:`FeedbackLog.user_stats`, read by every search of a signed-in user) is their last this
#: many searches: its cost does not grow with the user's history.
USER_WINDOW = 1000

_USER_STATS = (
    "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM feedback_events e WHERE e.query_id = q.query_id)), 0)"
    " FROM (SELECT query_id FROM feedback_queries WHERE client_id = ? ORDER BY rowid DESC LIMIT ?) q"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback_queries (
    query_id TEXT PRIMARY KEY,
    timestamp REAL NOT NULL,
    client_id TEXT,
    user_query TEXT NOT NULL,
    query_normalized TEXT NOT NULL,
    mode TEXT NOT NULL,
    context TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_queries_normalized ON feedback_queries(query_normalized);
CREATE INDEX IF NOT EXISTS feedback_queries_client ON feedback_queries(client_id);
CREATE TABLE IF NOT EXISTS feedback_hits (
    query_id TEXT NOT NULL REFERENCES feedback_queries(query_id),
    position INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    score REAL NOT NULL,
    provenance TEXT NOT NULL,
    PRIMARY KEY (query_id, position)
);
CREATE INDEX IF NOT EXISTS feedback_hits_object ON feedback_hits(object_id);
CREATE TABLE IF NOT EXISTS feedback_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id TEXT NOT NULL REFERENCES feedback_queries(query_id),
    object_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    action_name TEXT NOT NULL,
    value REAL,
    timestamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_events_query ON feedback_events(query_id);
"""


@dataclass(frozen=True, slots=True)
class Impression:
    """One logged search: what was asked, in which context, under which plan, and what was shown."""

    query_id: str
    timestamp: float
    user: str | None
    query: str
    normalized: str
    mode: str
    context: dict[str, Any]
    plan: list[dict[str, Any]]
    shown: tuple[str, ...]
    scores: tuple[float, ...] = ()
    #: per shown item, which strategies found it (a :class:`~xmodal.provenance.Provenance`: read ``names``)
    provenance: tuple[str, ...] = ()

    def position_of(self, item_id: str) -> int | None:
        """1-based position of an item in the list shown, or None."""
        try:
            return self.shown.index(item_id) + 1
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Event:
    """A user action on one shown item."""

    query_id: str
    item_id: str
    position: int
    event: str
    value: float | None
    timestamp: float
    reward: float = field(default=0.0)


EventListener = Callable[[Event, Impression], None]


def impression_rows(
    query: str,
    shown: Sequence[str],
    scores: Sequence[float],
    provenance: Sequence[str],
    user: str | None,
    context: Mapping[str, Any] | None,
    plan: Sequence[Mapping[str, Any]],
    mode: str,
    timestamp: float | None,
) -> tuple[str, tuple[Any, ...], list[tuple[Any, ...]]]:
    """A new impression's ``query_id``, its ``feedback_queries`` row and its ``feedback_hits`` rows (checked:
    ``scores`` and ``provenance``, when given, align with ``shown``), for any store of the log."""
    query_id = uuid.uuid4().hex
    ts = time.time() if timestamp is None else float(timestamp)
    scores = list(scores) or [0.0] * len(shown)
    provenance = list(provenance) or [""] * len(shown)
    if not (len(scores) == len(provenance) == len(shown)):
        raise ValidationError("shown", "ids, scores and provenance differ in length", "pass aligned lists")
    triples = zip(shown, scores, provenance, strict=True)
    hits = [(query_id, pos + 1, item, float(s), to_stored(p)) for pos, (item, s, p) in enumerate(triples)]
    record = (
        query_id,
        ts,
        user,
        query or "",
        normalize_query(query),
        mode,
        json.dumps(dict(context or {}), default=str),
        json.dumps([dict(p) for p in plan], default=str),
    )
    return query_id, record, hits


class FeedbackLog:
    """Impressions and events in SQLite tables of the index's store (own connection, own schema version)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db, self.read_only = connect(path, timeout=30)  # read-only: opened on a full disk (.space)
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise corrupt_error(path, exc) from exc
            raise StorageError(f"{path}: cannot open the feedback log ({exc})") from exc
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            if not self.read_only:  # read-only: the tables exist, or the write that needs them says the disk is full
                self._create_tables()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if is_corrupt(exc):
                raise corrupt_error(path, exc) from exc
            raise StorageError(f"{path}: cannot open the feedback log ({exc})") from exc
        self._lock = GuardedLock(path)  # a damaged page is a StorageError saying what to do
        self._readers = Readers(path)  # searches read the log on connections of their own (xmodal.store.readers)
        self._listeners: list[EventListener] = []
        self._impression_listeners: list[Callable[[Impression], None]] = []
        self._batched: list[Impression] | None = None  # a batch's impressions, uncommitted (the lock is held)
        with self._lock:
            self._check_schema()

    def _create_tables(self) -> None:
        """The log's tables that are missing; a store without them gets them in one transaction."""
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_meta'").fetchone()
        create_tables(self._db, _SCHEMA, new=not found)

    def _check_schema(self) -> None:
        try:
            row = self._db.execute("SELECT value FROM feedback_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            if not self.read_only:
                raise
            return  # no feedback tables yet, and no space to create them: the first write says so
        if row is None:
            if self.read_only:
                return
            self._db.execute("INSERT INTO feedback_meta VALUES ('schema_version', ?)", (str(FEEDBACK_SCHEMA_VERSION),))
        elif int(row[0]) != FEEDBACK_SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: feedback schema version {row[0]}, this xmodal reads {FEEDBACK_SCHEMA_VERSION}; "
                "export the old log or use a new index folder"
            )

    def _begin(self) -> None:
        """Start a write transaction (under the lock); a log opened read-only on a full disk refuses it."""
        if self.read_only:
            raise disk_full(self.path.parent, "the feedback log was opened read-only for lack of space", reopen=True)
        self._db.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self._readers.close()
        with self._lock:
            self._db.close()

    @property
    def shared_state(self) -> SharedState | None:
        """None: learned state lives in the index folder of each process (one machine)."""
        return None

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(event, impression)`` after every committed event (online learners)."""
        self._listeners.append(listener)

    def subscribe_impressions(self, listener: Callable[[Impression], None]) -> None:
        """Call ``listener(impression)`` after every committed impression."""
        self._impression_listeners.append(listener)

    # -- writes -------------------------------------------------------------------------------
    def log_impression(
        self,
        query: str,
        shown: Sequence[str],
        *,
        scores: Sequence[float] = (),
        provenance: Sequence[str] = (),
        user: str | None = None,
        context: Mapping[str, Any] | None = None,
        plan: Sequence[Mapping[str, Any]] = (),
        mode: str = "dense",
        timestamp: float | None = None,
    ) -> str:
        """Record what was shown for a query; returns the new ``query_id`` once committed (inside
        :meth:`batch`: once the batch commits)."""
        query_id, record, hits = impression_rows(query, shown, scores, provenance, user, context, plan, mode, timestamp)
        with self._lock:
            batched = self._batched
            if batched is None:
                self._begin()
            elif not self._db.in_transaction:  # SQLite ended the batch's transaction (a full disk): it fails
                raise StorageError(f"{self.path}: the batch's transaction was rolled back; log the impressions again")
            else:
                self._db.execute("SAVEPOINT impression")  # in a batch: this impression whole, or none of it
            try:
                self._db.execute("INSERT INTO feedback_queries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", record)
                self._db.executemany("INSERT INTO feedback_hits VALUES (?, ?, ?, ?, ?)", hits)
                self._db.execute("COMMIT" if batched is None else "RELEASE impression")
            except BaseException:
                if self._db.in_transaction and batched is None:  # SQLite ends it itself on some errors (full disk)
                    self._db.execute("ROLLBACK")
                elif self._db.in_transaction:  # the batch goes on without this impression
                    self._db.execute("ROLLBACK TO impression")
                    self._db.execute("RELEASE impression")
                raise
            impression = _listened(record, shown, scores, provenance) if self._impression_listeners else None
            if batched is not None:
                if impression is not None:
                    batched.append(impression)
                return query_id
        if impression is not None:
            for listener in self._impression_listeners:
                listener(impression)
        return query_id

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: the impressions this thread logs inside the block are written in one transaction,
        committed (one fsync) when the block ends, and only then heard by the listeners, in order; an error
        leaving the block rolls them all back. Only impressions are logged inside (an event or a purge is an
        error there); other threads' writes wait for the block to end. A listener
        that fails is logged and does not fail the block (its impression is committed); outside a batch its
        error reaches the caller. Nested, a block is part of the outer one."""
        with self._lock:
            if self._batched is not None:
                yield
                return
            self._begin()
            committed: list[Impression] = []
            self._batched = committed
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._batched = None
        for impression in committed:
            for listener in self._impression_listeners:
                try:
                    listener(impression)
                except Exception:  # noqa: BLE001 - the impression is committed; learning skips it
                    log.exception(
                        "an impression listener failed on %s (committed; not learned from)", impression.query_id
                    )

    def record_event(
        self,
        query_id: str,
        item_id: str,
        event: str = "click",
        *,
        position: int | None = None,
        value: float | None = None,
        timestamp: float | None = None,
    ) -> Event:
        """Record a user action on an item shown for ``query_id``; checked, committed, then broadcast."""
        check_event(event, value)
        impression = self.impression(query_id)
        position = check_position(impression, item_id, position)
        ts = time.time() if timestamp is None else float(timestamp)
        with self._lock:
            self._begin()
            try:
                self._db.execute(
                    "INSERT INTO feedback_events (query_id, object_id, position, action_name, value, timestamp)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (query_id, item_id, position, event, None if value is None else float(value), ts),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                    self._db.execute("ROLLBACK")
                raise
        record = Event(
            query_id, item_id, position, event, None if value is None else float(value), ts, EVENT_TYPES[event]
        )
        for listener in self._listeners:
            listener(record, impression)
        return record

    # -- reads --------------------------------------------------------------------------------
    def impression(self, query_id: str) -> Impression:
        """The impression logged under ``query_id``, or :class:`NotFoundError`."""
        with self._readers.reading() as db:
            row = db.execute("SELECT * FROM feedback_queries WHERE query_id = ?", (query_id,)).fetchone()
            if row is None:
                raise NotFoundError(
                    f"no logged query with query_id {query_id!r}; use the id returned by search(log=True)"
                )
            hits = db.execute(
                "SELECT object_id, score, provenance FROM feedback_hits WHERE query_id = ? ORDER BY position",
                (query_id,),
            ).fetchall()
        return _impression(row, hits)

    def impressions(self) -> Iterator[Impression]:
        """Every impression, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM feedback_queries ORDER BY timestamp, rowid").fetchall()
            hits: dict[str, list[tuple[str, float, str]]] = {}
            for qid, obj, score, prov in self._db.execute(
                "SELECT query_id, object_id, score, provenance FROM feedback_hits ORDER BY query_id, position"
            ):
                hits.setdefault(qid, []).append((obj, score, prov))
        for row in rows:
            yield _impression(row, hits.get(row[0], []))

    def events(self, query_id: str | None = None) -> list[Event]:
        """Events, oldest first, of one query or of all."""
        sql = "SELECT query_id, object_id, position, action_name, value, timestamp FROM feedback_events"
        params: tuple[Any, ...] = ()
        if query_id is not None:
            sql, params = sql + " WHERE query_id = ?", (query_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY event_id", params).fetchall()
        return [Event(q, o, p, a, v, t, EVENT_TYPES.get(a, 0.0)) for q, o, p, a, v, t in rows]

    def forget(self, item_ids: Sequence[str]) -> dict[str, int]:
        """Purge what the log holds of items (a privacy-complete delete's ``purge_feedback``): their events
        and their places in the impressions' shown lists, in one transaction; how many of each went. The
        queries' own text is the user's, and stays."""
        ids = list(dict.fromkeys(item_ids))
        gone = {"events": 0, "shown": 0}
        with self._lock:
            self._begin()
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    gone["events"] += self._db.execute(
                        f"DELETE FROM feedback_events WHERE object_id IN ({marks})", chunk
                    ).rowcount
                    gone["shown"] += self._db.execute(
                        f"DELETE FROM feedback_hits WHERE object_id IN ({marks})", chunk
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return gone

    # -- tails, for what folds the log into aggregates (the memory index) -------------------------
    def marks(self) -> tuple[int, int]:
        """Where the log ends now: (the last impression's sequence number, the last event's id)."""
        with self._readers.reading() as db:
            row = db.execute(
                "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM feedback_queries),"
                " (SELECT COALESCE(MAX(event_id), 0) FROM feedback_events)"
            ).fetchone()
        return int(row[0]), int(row[1])

    def shown_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, tuple[str, ...]]]:
        """(sequence number, normalised query, ids shown in order) of the impressions after ``after``,
        oldest first; only one normalised query's with ``normalized``; at most ``limit`` (-1: all)."""
        where = "rowid > ?" + (" AND query_normalized = ?" if normalized is not None else "")
        params: tuple[Any, ...] = (after,) if normalized is None else (after, normalized)
        with self._readers.reading() as db:
            queries = db.execute(
                f"SELECT rowid, query_id, query_normalized FROM feedback_queries WHERE {where} ORDER BY rowid LIMIT ?",
                (*params, limit),
            ).fetchall()
            shown: dict[str, list[str]] = {q: [] for _, q, _ in queries}
            for start in range(0, len(queries), 500):
                ids = [q for _, q, _ in queries[start : start + 500]]
                for qid, obj in db.execute(
                    f"SELECT query_id, object_id FROM feedback_hits WHERE query_id IN ({','.join('?' * len(ids))})"
                    " ORDER BY query_id, position",
                    ids,
                ):
                    shown[qid].append(obj)
        return [(int(seq), str(norm), tuple(shown[qid])) for seq, qid, norm in queries]

    def rewards_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, str, float]]:
        """(event id, normalised query, item id, reward) of the events after ``after``, oldest first; only
        those on one normalised query's impressions with ``normalized``; at most ``limit`` (-1: all)."""
        # CROSS JOIN: SQLite reads the events' tail first (the events since a fold: few), not every impression
        # of the query ever logged through its index
        sql = (
            "SELECT e.event_id, q.query_normalized, e.object_id, e.action_name FROM feedback_events e"
            " CROSS JOIN feedback_queries q USING (query_id) WHERE e.event_id > ?"
        )
        params: tuple[Any, ...] = (after,)
        if normalized is not None:
            sql, params = sql + " AND q.query_normalized = ?", (after, normalized)
        with self._readers.reading() as db:
            rows = db.execute(sql + " ORDER BY e.event_id LIMIT ?", (*params, limit)).fetchall()
        return [(int(e), str(n), str(o), EVENT_TYPES.get(a, 0.0)) for e, n, o, a in rows]

    def popularity(self) -> dict[str, float]:
        """Weighted positive events per item (the popularity prior's counts)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT object_id, action_name, COUNT(*) FROM feedback_events GROUP BY 1, 2"
            ).fetchall()
        out: dict[str, float] = {}
        for obj, action, n in rows:
            out[obj] = out.get(obj, 0.0) + EVENT_TYPES.get(action, 0.0) * n
        return out

    def user_stats(self, user: str) -> dict[str, float]:
        with self._readers.reading() as db:
            searches, events = db.execute(_USER_STATS, (user, USER_WINDOW)).fetchone()
        return {"searches": float(searches), "events": float(events), "rate": events / searches if searches else 0.0}

    def counts(self) -> dict[str, int]:
        with self._lock:
            q = self._db.execute("SELECT COUNT(*) FROM feedback_queries").fetchone()[0]
            e = self._db.execute("SELECT COUNT(*) FROM feedback_events").fetchone()[0]
        return {"impressions": int(q), "events": int(e)}


def check_event(event: str, value: float | None) -> None:
    """An event's type and optional value, checked before anything is written."""
    if event not in EVENT_TYPES:
        raise ValidationError("event", f"unknown event type {event!r}", f"use one of {', '.join(EVENT_TYPES)}")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value):
        raise ValidationError("value", f"must be a finite number, got {value!r}", "pass e.g. value=1.5 or omit it")


def check_position(impression: Impression, item_id: str, position: int | None) -> int:
    """The 1-based position of ``item_id`` in what ``impression`` showed (``position``, when given, must be it)."""
    shown_at = impression.position_of(item_id)
    if shown_at is None:
        raise ValidationError(
            "item_id",
            f"item {item_id!r} was not shown for query {impression.query_id!r}",
            "send feedback only for items in that query's results",
        )
    if position is None:
        return shown_at
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= len(impression.shown):
        raise ValidationError(
            "position", f"{position!r} is out of range", f"use the 1-based position, 1 to {len(impression.shown)}"
        )
    if position != shown_at:
        raise ValidationError(
            "position",
            f"item {item_id!r} was shown at {shown_at}, not {position}",
            "omit position or pass the one shown",
        )
    return position


def _listened(
    record: tuple[Any, ...], shown: Sequence[str], scores: Sequence[float], provenance: Sequence[str]
) -> Impression:
    """A just-written impression as its listeners get it, equal to what :meth:`FeedbackLog.impression` reads
    back, without parsing again what was just written: the context and plan from their stored JSON (plain
    data, as read back), the hits as given."""
    return Impression(
        record[0],
        record[1],
        record[2],
        record[3],
        record[4],
        record[5],
        json.loads(record[6]),
        json.loads(record[7]),
        tuple(shown),
        tuple(float(s) for s in scores) if scores else (0.0,) * len(shown),
        tuple(_provenance(p) for p in provenance) if provenance else ("",) * len(shown),
    )


def _provenance(given: str) -> str:
    """``from_stored(to_stored(given))`` without the JSON: a :class:`Provenance` as it is, a plain name as one."""
    if isinstance(given, Provenance) or not given:
        return given
    return Provenance((given,))


def _impression(row: Sequence[Any], hits: Sequence[tuple[str, float, str]]) -> Impression:
    qid, ts, user, text, norm, mode, context, plan = row
    return Impression(
        qid,
        float(ts),
        user,
        text,
        norm,
        mode,
        json.loads(context),
        json.loads(plan),
        tuple(h[0] for h in hits),
        tuple(float(h[1]) for h in hits),
        tuple(from_stored(h[2]) for h in hits),
    )
