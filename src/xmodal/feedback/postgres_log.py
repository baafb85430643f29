"""The feedback log in the PostgreSQL store, shared by every server over it.

The same tables as the SQLite log (:mod:`.log`: UBI names), in the store's schema. Each write is one
transaction; feedback writers take an advisory lock of their own, so impression sequence numbers and event ids
commit in order (a reader that saw one saw every one before it). A commit sends a notice on the store's
``feedback`` topic, and each server then *tails* the log: every impression and event after the position it
has delivered, in log order, goes to its listeners (the bandit policy, the memory index, the popularity
prior), whichever server logged it. A server's own write is delivered the same way, right after its commit,
so every server's learners see one order. A click logged on one server therefore teaches the policy of all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..errors import NotFoundError
from ..store.postgres import PostgresStore
from ..store.postgres_state import SharedState
from .log import (
    EVENT_TYPES,
    USER_WINDOW,
    Event,
    EventListener,
    Impression,
    _impression,
    check_event,
    check_position,
    impression_rows,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_queries (
    seq BIGSERIAL UNIQUE,
    query_id TEXT PRIMARY KEY,
    timestamp DOUBLE PRECISION NOT NULL,
    client_id TEXT,
    user_query TEXT NOT NULL,
    query_normalized TEXT NOT NULL,
    mode TEXT NOT NULL,
    context TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_queries_normalized ON feedback_queries(query_normalized, seq);
CREATE INDEX IF NOT EXISTS feedback_queries_client_seq ON feedback_queries(client_id, seq);
DROP INDEX IF EXISTS feedback_queries_client;
CREATE TABLE IF NOT EXISTS feedback_hits (
    query_id TEXT NOT NULL REFERENCES feedback_queries(query_id),
    position INTEGER NOT NULL,
    object_id TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    provenance TEXT NOT NULL,
    PRIMARY KEY (query_id, position)
);
CREATE INDEX IF NOT EXISTS feedback_hits_object ON feedback_hits(object_id);
CREATE TABLE IF NOT EXISTS feedback_events (
    event_id BIGSERIAL PRIMARY KEY,
    query_id TEXT NOT NULL REFERENCES feedback_queries(query_id),
    object_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    action_name TEXT NOT NULL,
    value DOUBLE PRECISION,
    timestamp DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_events_query ON feedback_events(query_id)
"""
_QUERY = "query_id, timestamp, client_id, user_query, query_normalized, mode, context, plan"
LOCK = "feedback"
#: Records read per round while delivering the log's tail
TAIL_BATCH = 1000


class PostgresFeedbackLog:
    """Impressions and events in the PostgreSQL store, delivered to this server's listeners in log order."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        store.write_locked(self._create, "creating the feedback tables", lock=LOCK)
        self._state = SharedState(store)
        self._listeners: list[EventListener] = []
        self._impression_listeners: list[Callable[[Impression], None]] = []
        self._tail = threading.RLock()  # one delivery at a time, in log order
        self._delivered = self.marks()  # what came before this process opened is not news to it
        self._position = self._delivered  # the record being delivered (what a listener saving its state reflects)
        store.follow("feedback", self.deliver)

    @staticmethod
    def _create(cur: Any) -> None:
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                cur.execute(statement)

    @property
    def shared_state(self) -> SharedState:
        return self._state

    def close(self) -> None:
        """Nothing of its own to close: the store's connection is closed with the store."""

    def subscribe(self, listener: EventListener) -> None:
        with self._tail:
            self._listeners.append(listener)

    def subscribe_impressions(self, listener: Callable[[Impression], None]) -> None:
        with self._tail:
            self._impression_listeners.append(listener)

    def subscribe_from(
        self, marks: Sequence[int], on_impression: Callable[[Impression], None], on_event: EventListener
    ) -> tuple[int, int]:
        """Subscribe a learner whose state reflects the log up to ``marks`` (impression, event): what was logged
        since is delivered to it first (only to it), then everything new with the others. Returns the marks it
        reflects once caught up."""
        with self._tail:
            start = (int(marks[0]), int(marks[1])) if len(marks) == 2 else (0, 0)
            self._run(start, self._delivered, [on_impression], [on_event])
            self._position = self._delivered
            self._impression_listeners.append(on_impression)
            self._listeners.append(on_event)
            return self._delivered

    def delivered(self) -> tuple[int, int]:
        """The marks a listener reflects now (hold :meth:`holding` to keep them from moving); called by a
        listener while it hears of a record, the marks up to that record."""
        return self._position

    def holding(self) -> threading.RLock:
        """The lock deliveries take: while held, no listener hears of anything new (a learner saving its state
        with :meth:`delivered`)."""
        return self._tail

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
        """Record what was shown for a query; returns the new ``query_id`` once committed (and delivered here)."""
        query_id, row, hits = impression_rows(query, shown, scores, provenance, user, context, plan, mode, timestamp)
        record = (*row[:3], row[3].replace("\x00", ""), row[4].replace("\x00", ""), *row[5:])  # PostgreSQL text

        def run(cur: Any) -> None:
            cur.execute(f"INSERT INTO feedback_queries ({_QUERY}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", record)
            cur.executemany("INSERT INTO feedback_hits VALUES (%s, %s, %s, %s, %s)", hits)
            self.store.notify(cur, "feedback")

        self.store.write_locked(run, "logging an impression", lock=LOCK)
        self.deliver()
        return query_id

    def batch(self) -> AbstractContextManager[None]:
        """No group commit here yet: each impression of the block commits on its own, as it is logged."""
        return nullcontext()

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
        """Record a user action on an item shown for ``query_id``; checked, committed, then delivered."""
        check_event(event, value)
        impression = self.impression(query_id)
        position = check_position(impression, item_id, position)
        ts = time.time() if timestamp is None else float(timestamp)
        number = None if value is None else float(value)

        def run(cur: Any) -> None:
            cur.execute(
                "INSERT INTO feedback_events (query_id, object_id, position, action_name, value, timestamp)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (query_id, item_id, position, event, number, ts),
            )
            self.store.notify(cur, "feedback")

        self.store.write_locked(run, "recording an event", lock=LOCK)
        self.deliver()
        return Event(query_id, item_id, position, event, number, ts, EVENT_TYPES[event])

    # -- delivery -----------------------------------------------------------------------------
    def deliver(self) -> None:
        """Deliver what was logged (by any server) after the position delivered so far to the listeners."""
        with self._tail:
            at = self._run(self._delivered, None, self._impression_listeners, self._listeners)
            self._delivered = self._position = at

    def _run(
        self,
        start: tuple[int, int],
        end: tuple[int, int] | None,
        on_impression: Sequence[Callable[[Impression], None]],
        on_event: Sequence[EventListener],
    ) -> tuple[int, int]:
        """Deliver the impressions and events after ``start`` (up to ``end``; None: all) in log order: the
        impressions first, then the events whose impression was delivered (an event of an impression committed
        meanwhile waits for the next round, behind it)."""
        at_q, at_e = start
        while True:
            upper = "" if end is None else f" AND seq <= {int(end[0])}"
            rows = self.store.read(
                f"SELECT seq, {_QUERY} FROM feedback_queries WHERE seq > %s{upper} ORDER BY seq LIMIT %s",
                (at_q, TAIL_BATCH),
            )
            impressions = self._with_hits([r[1:] for r in rows])
            for row in rows:
                at_q = int(row[0])
                self._position = (at_q, at_e)
                for listener in on_impression:
                    listener(impressions[str(row[1])])
            if len(rows) == TAIL_BATCH:
                continue
            upper = "" if end is None else f" AND e.event_id <= {int(end[1])}"
            events = self.store.read(
                "SELECT e.event_id, q.seq, e.query_id, e.object_id, e.position, e.action_name, e.value, e.timestamp"
                " FROM feedback_events e JOIN feedback_queries q USING (query_id)"
                f" WHERE e.event_id > %s{upper} ORDER BY e.event_id LIMIT %s",
                (at_e, TAIL_BATCH),
            )
            ready = []
            for found in events:
                if int(found[1]) > at_q:
                    break  # its impression is not delivered yet: it comes first, next round
                ready.append(found)
            wanted = list(dict.fromkeys(str(e[2]) for e in ready if str(e[2]) not in impressions))
            impressions.update(self._with_hits(self._queries(wanted)))
            for event_id, _, qid, obj, position, action, value, ts in ready:
                at_e = int(event_id)
                self._position = (at_q, at_e)
                number = None if value is None else float(value)
                record = Event(qid, obj, int(position), action, number, float(ts), EVENT_TYPES.get(action, 0.0))
                for event_listener in on_event:
                    event_listener(record, impressions[str(qid)])
            if not rows and len(ready) < TAIL_BATCH and len(ready) == len(events):
                return at_q, at_e

    def _queries(self, query_ids: Sequence[str]) -> list[tuple[Any, ...]]:
        if not query_ids:
            return []
        return self.store.read(f"SELECT {_QUERY} FROM feedback_queries WHERE query_id = ANY(%s)", (list(query_ids),))

    def _with_hits(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, Impression]:
        """Impressions by query id, in the order of ``rows``, each with what it showed."""
        if not rows:
            return {}
        ids = [str(r[0]) for r in rows]
        hits: dict[str, list[tuple[str, float, str]]] = {qid: [] for qid in ids}
        for qid, obj, score, prov in self.store.read(
            "SELECT query_id, object_id, score, provenance FROM feedback_hits WHERE query_id = ANY(%s)"
            " ORDER BY query_id, position",
            (ids,),
        ):
            hits[str(qid)].append((str(obj), float(score), str(prov)))
        return {str(r[0]): _impression(r, hits[str(r[0])]) for r in rows}

    # -- reads --------------------------------------------------------------------------------
    def impression(self, query_id: str) -> Impression:
        found = self._with_hits(self._queries([query_id]))
        if not found:
            raise NotFoundError(f"no logged query with query_id {query_id!r}; use the id returned by search(log=True)")
        return found[query_id]

    def impressions(self) -> Iterator[Impression]:
        """Every impression, oldest first."""
        rows = self.store.read(f"SELECT {_QUERY} FROM feedback_queries ORDER BY seq")
        for start in range(0, len(rows), TAIL_BATCH):
            yield from self._with_hits(rows[start : start + TAIL_BATCH]).values()

    def events(self, query_id: str | None = None) -> list[Event]:
        sql = "SELECT query_id, object_id, position, action_name, value, timestamp FROM feedback_events"
        params: tuple[Any, ...] = ()
        if query_id is not None:
            sql, params = sql + " WHERE query_id = %s", (query_id,)
        rows = self.store.read(sql + " ORDER BY event_id", params)
        return [
            Event(str(q), str(o), int(p), str(a), None if v is None else float(v), float(t), EVENT_TYPES.get(a, 0.0))
            for q, o, p, a, v, t in rows
        ]

    def forget(self, item_ids: Sequence[str]) -> dict[str, int]:
        """Purge the items' events and their places in the shown lists, in one transaction (see :mod:`.log`)."""
        ids = list(dict.fromkeys(item_ids))

        def run(cur: Any) -> dict[str, int]:
            cur.execute("DELETE FROM feedback_events WHERE object_id = ANY(%s)", (ids,))
            events = cur.rowcount
            cur.execute("DELETE FROM feedback_hits WHERE object_id = ANY(%s)", (ids,))
            return {"events": int(events), "shown": int(cur.rowcount)}

        return self.store.write_locked(run, "purging feedback", lock=LOCK) if ids else {"events": 0, "shown": 0}

    def marks(self) -> tuple[int, int]:
        row = self.store.read(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM feedback_queries),"
            " (SELECT COALESCE(MAX(event_id), 0) FROM feedback_events)"
        )[0]
        return int(row[0]), int(row[1])

    def shown_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, tuple[str, ...]]]:
        where = "seq > %s" + (" AND query_normalized = %s" if normalized is not None else "")
        params: tuple[Any, ...] = (after,) if normalized is None else (after, normalized)
        cap = f" LIMIT {int(limit)}" if limit >= 0 else ""
        queries = self.store.read(
            f"SELECT seq, query_id, query_normalized FROM feedback_queries WHERE {where} ORDER BY seq{cap}", params
        )
        shown: dict[str, list[str]] = {str(q): [] for _, q, _ in queries}
        if queries:
            for qid, obj in self.store.read(
                "SELECT query_id, object_id FROM feedback_hits WHERE query_id = ANY(%s) ORDER BY query_id, position",
                (list(shown),),
            ):
                shown[str(qid)].append(str(obj))
        return [(int(seq), str(norm), tuple(shown[str(qid)])) for seq, qid, norm in queries]

    def rewards_since(
        self, after: int, normalized: str | None = None, limit: int = -1
    ) -> list[tuple[int, str, str, float]]:
        sql = (
            "SELECT e.event_id, q.query_normalized, e.object_id, e.action_name FROM feedback_events e"
            " JOIN feedback_queries q USING (query_id) WHERE e.event_id > %s"
        )
        params: tuple[Any, ...] = (after,)
        if normalized is not None:
            sql, params = sql + " AND q.query_normalized = %s", (after, normalized)
        cap = f" LIMIT {int(limit)}" if limit >= 0 else ""
        rows = self.store.read(sql + " ORDER BY e.event_id" + cap, params)
        return [(int(e), str(n), str(o), EVENT_TYPES.get(a, 0.0)) for e, n, o, a in rows]

    def popularity(self, until: int | None = None) -> dict[str, float]:
        """Weighted positive events per item (of the events up to id ``until``; None: all)."""
        out: dict[str, float] = {}
        upper = "" if until is None else f" WHERE event_id <= {int(until)}"
        for obj, action, n in self.store.read(
            f"SELECT object_id, action_name, COUNT(*) FROM feedback_events{upper} GROUP BY 1, 2"
        ):
            out[str(obj)] = out.get(str(obj), 0.0) + EVENT_TYPES.get(action, 0.0) * int(n)
        return out

    def user_stats(self, user: str) -> dict[str, float]:
        searches, events = self.store.read(
            "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM feedback_events e WHERE e.query_id = q.query_id)), 0)"
            " FROM (SELECT query_id FROM feedback_queries WHERE client_id = %s ORDER BY seq DESC LIMIT %s) q",
            (user, USER_WINDOW),
        )[0]
        n, m = int(searches), int(events)
        return {"searches": float(n), "events": float(m), "rate": m / n if n else 0.0}

    def counts(self) -> dict[str, int]:
        q, e = self.store.read(
            "SELECT (SELECT COUNT(*) FROM feedback_queries), (SELECT COUNT(*) FROM feedback_events)"
        )[0]
        return {"impressions": int(q), "events": int(e)}
