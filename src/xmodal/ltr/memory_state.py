"""The memory index's state on disk: predicted-query priors and feedback statistics, in ``ltr/memory.sqlite``.

Two folds, each with the position it reflects (in the ``meta`` table, beside the format version):

- **priors**, ``(normalised predicted query, row)`` pairs (:func:`predicted_queries` of each item), a
  fold of the store up to change ``store_seq``;
- **feedback**, per ``(normalised query, item id)`` position-weighted impressions and capped actions,
  and per normalised query its searches and actions, a fold of the feedback log up to impression
  ``impressions`` and event ``events``.

Opening reads nothing but that row of positions: a query's priors and statistics are read when it is
searched (one statement, cached until something changes); once the first search's background pass has
read the whole ``prior`` table (:mod:`.memory_priors`), the priors come from memory. The changes this process applies
(``on_put`` / ``on_delete``) wait in memory and are merged into each look-up; the feedback logged after
the fold is read from the log's tail for the query being looked up, so a look-up counts every
impression once whoever folded it. :meth:`MemoryState.checkpoint` writes only when something is
pending, as one transaction that folds the store's and the log's changes since the positions stored
(not what this process happens to hold), so two processes folding in turn can neither lose a change nor
count one twice. A missing, unreadable or older-format file is rebuilt from the store and the log, with
a warning; a rollback journal (not WAL) keeps a read from creating any file. A fold that finds no space on
the disk is a :class:`~xmodal.errors.DiskFull` (the file is sound: nothing is rebuilt, the changes stay
pending); when that happens as the engine opens, this process keeps the state in memory, so reads work on
a full disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..changes import replay
from ..errors import DiskFull
from ..records import Item
from ..store.space import disk_full, is_full
from ..store.sqlite import StoredItem
from .memory_priors import PriorsMirror
from .text import normalize_query, tokens

if TYPE_CHECKING:
    from ..extension import EngineView
    from ..feedback.base import FeedbackStore

log = logging.getLogger(__name__)

FORMAT = 1
FILE = "memory.sqlite"
PREDICTED_PRIOR = 0.5
PRIOR_STRENGTH = 2.0
#: Items changed in this process (a bulk add) after which their priors are written without waiting.
FLUSH_ROWS = 10_000
#: Feedback records (impressions, events) behind the fold after which they are folded without waiting.
FOLD_RECORDS = 1_000
BATCH = 2000
CACHE_KEYS = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS prior (key TEXT NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (key, row)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS prior_row ON prior(row);
CREATE TABLE IF NOT EXISTS pair (
    key TEXT NOT NULL,
    item TEXT NOT NULL,
    impressions REAL NOT NULL,
    actions REAL NOT NULL,
    PRIMARY KEY (key, item)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (key TEXT PRIMARY KEY, searches REAL NOT NULL, actions REAL NOT NULL) WITHOUT ROWID;
"""
_POSITIONS = ("format", "store_seq", "impressions", "events")
# what a look-up reads, tagged by part: the statistics and the log positions they reflect, in one snapshot
_SELECT_FEEDBACK = """
SELECT 1, name, value, NULL FROM meta
UNION ALL SELECT 2, item, impressions, actions FROM pair WHERE key = ?1
UNION ALL SELECT 3, NULL, searches, actions FROM history WHERE key = ?1
"""
_SELECT_ALL = "SELECT 0, row, NULL, NULL FROM prior WHERE key = ?1 UNION ALL " + _SELECT_FEEDBACK


def examination(position: int) -> float:
    """The chance that a user looks at a result at ``position`` (1-based): the usual 1/p model, so an
    impression low on the page counts for less than one at the top (rates become clicks over expected
    examinations, which corrects the rate of items usually shown low)."""
    return 1.0 / max(position, 1)


@dataclass(slots=True)
class PairStats:
    """Statistics of one (normalised query, item) pair."""

    impressions: float = 0.0
    actions: float = 0.0
    prior: float = 0.0

    def score(self, strength: float = PRIOR_STRENGTH) -> float:
        return (self.actions + strength * self.prior) / (self.impressions + strength)


@dataclass(frozen=True, slots=True)
class Recall:
    """What the memory holds for one normalised query: per item id its statistics, and the query's
    searches and positive actions. Shared by the cache: read it, never change it."""

    pairs: dict[str, PairStats] = field(default_factory=dict)
    searches: float = 0.0
    actions: float = 0.0


def predicted_queries(item: Item) -> list[str]:
    """Queries a user might type to find ``item``: title, title phrases, its facets, facet + last title word."""
    words = tokens(item.title)
    out = [item.title] if words else []
    if len(words) > 2:
        out += [" ".join(words[:2]), " ".join(words[-2:])]
    head = words[-1] if words else ""
    values = [v for v in item.attributes.values() if isinstance(v, str) and len(v) <= 40]
    if len(values) > 1:
        out.append(" ".join(values))  # all facets together: "red leather boots"
    for value in item.attributes.values():
        if isinstance(value, str) and head and len(value) <= 40:
            out.append(f"{value} {head}")
    return out


def predicted_keys(item: Item) -> frozenset[str]:
    """The normalised memory keys of :func:`predicted_queries`."""
    return frozenset(key for key in map(normalize_query, predicted_queries(item)) if key)


class MemoryState:
    """The priors and feedback statistics of the memory index, on disk under ``folder`` (None: in memory).

    ``priors=False`` keeps no priors (no cold start); ``log=None`` keeps no feedback statistics.
    """

    def __init__(
        self, view: EngineView, folder: Path | None, *, priors: bool = True, log: FeedbackStore | None = None
    ) -> None:
        self.view = view
        self.path = folder / FILE if folder is not None else None
        self.priors = priors
        self.log = log
        self._lock = threading.RLock()
        # rows this process changed since the last fold: row -> (item id, keys, item), None once deleted
        self._pending: dict[int, tuple[str, frozenset[str], Item] | None] = {}
        self._pending_keys: dict[str, set[int]] = {}
        self._dirty = False
        self._logged = 0  # feedback records this process logged since the last fold
        self._version = 0
        self._cache: dict[str, tuple[tuple[int, int, int], Recall]] = {}
        #: the file's priors held in memory once a background pass has read them (:mod:`.memory_priors`)
        self._mirror = PriorsMirror(lambda: self.path if self.priors else None)
        self._db = self._open()
        self._catch_up()

    # -- opening ----------------------------------------------------------------------------------
    def _connect(self, target: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: readers create no -wal/-shm files
        db.execute("PRAGMA secure_delete=ON")  # a deleted item's predicted queries leave no bytes in freed pages
        return db

    def _create(self, target: Path | str) -> sqlite3.Connection:
        db = self._connect(target)
        try:  # the tables and the positions in one transaction: one commit (a rollback journal syncs each: 9)
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
            db.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(n, FORMAT if n == "format" else 0) for n in _POSITIONS]
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._create(":memory:")
        try:
            if self.path.is_file():
                db: sqlite3.Connection | None = None
                try:
                    db = self._connect(self.path)
                    problem = self._problem(db)
                except sqlite3.DatabaseError as exc:
                    problem = f"unreadable ({exc})"
                if db is not None and problem is None:
                    return db
                if db is not None:
                    db.close()
                log.warning("%s: %s; rebuilding the memory index from the store", self.path, problem)
                self._remove()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._create(self.path)
        except (OSError, sqlite3.Error) as exc:
            log.warning("%s: cannot keep the memory index on disk (%s); it is rebuilt in memory", self.path, exc)
            self.path = None
            return self._create(":memory:")

    def _remove(self) -> None:
        assert self.path is not None
        for extra in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{extra}").unlink(missing_ok=True)

    def _problem(self, db: sqlite3.Connection) -> str | None:
        """Why the file on disk cannot be used as it is (None: it can)."""
        try:
            positions = dict(db.execute("SELECT name, value FROM meta").fetchall())
            db.execute("SELECT 1 FROM prior LIMIT 1").fetchall()
            db.execute("SELECT 1 FROM pair LIMIT 1").fetchall()
            db.execute("SELECT 1 FROM history LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            return f"unreadable ({exc})"
        if any(name not in positions for name in _POSITIONS):
            return "incomplete (no positions recorded)"
        if positions["format"] != FORMAT:
            return f"format {positions['format']}, this xmodal writes {FORMAT}"
        if positions["store_seq"] > self.view.last_seq():
            return f"reflects store change {positions['store_seq']}, but the store ends at {self.view.last_seq()}"
        marks = self.log.marks() if self.log is not None else None  # without a log, the statistics go unread
        if marks is not None and (positions["impressions"] > marks[0] or positions["events"] > marks[1]):
            return "reflects feedback the log does not hold"
        return None

    def _positions(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._db.execute("SELECT name, value FROM meta")}

    def _catch_up(self) -> None:
        """Bring the state up to the store and the log: a large gap is folded now (written), a small one
        waits in memory until the next checkpoint."""
        at = self._positions()
        behind = 0
        if self.priors:
            seq, last = at["store_seq"], self.view.last_seq()
            if seq == 0 and last > 0:
                behind = FLUSH_ROWS  # nothing folded yet: fold everything now
            elif seq != last:
                replay(self.view, seq, self)  # applied in memory, written at the next checkpoint
                behind = len(self._pending)
        if self.log is not None:
            marks = self.log.marks()
            behind = max(behind, marks[0] - at["impressions"], marks[1] - at["events"])
            self._logged = max(marks[0] - at["impressions"], marks[1] - at["events"])
        if behind >= min(FLUSH_ROWS, FOLD_RECORDS) or (self.path is None and behind > 0):
            try:
                self._fold_now()
            except DiskFull as exc:  # reads must work on a full disk: hold the state in memory this time
                log.warning("%s: %s; the memory index is kept in memory by this process", self.path, exc)
                self._db.close()
                self.path = None
                self._db = self._create(":memory:")
                self._fold_now()

    # -- following the store (a change-log follower) -------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        if not self.priors:
            return
        with self._lock:
            for s in stored:
                self._drop(s.row)
                keys = predicted_keys(s.item)
                self._pending[s.row] = (s.item.id, keys, s.item)
                for key in keys:
                    self._pending_keys.setdefault(key, set()).add(s.row)
            self._changed()
            if len(self._pending) >= FLUSH_ROWS:
                self._fold_now()

    def on_delete(self, rows: Sequence[int]) -> None:
        if not self.priors:
            return
        with self._lock:
            for row in rows:
                self._drop(row)
                self._pending[row] = None
            self._changed()

    def _drop(self, row: int) -> None:
        entry = self._pending.pop(row, None)
        if entry is not None:
            for key in entry[1]:
                rows = self._pending_keys.get(key)
                if rows is not None:
                    rows.discard(row)
                    if not rows:
                        del self._pending_keys[key]

    def _changed(self) -> None:
        self._dirty = True
        self._version += 1

    def noted_feedback(self) -> None:
        """This process logged an impression or an event (read from the log's tail until folded)."""
        with self._lock:
            self._logged += 1
            self._version += 1
            if self._logged >= FOLD_RECORDS:
                self._fold_now(store=False)

    # -- reads ------------------------------------------------------------------------------------
    def recall(self, key: str) -> Recall:
        """Everything held for the normalised query ``key`` (cached until something changes)."""
        if not key:
            return Recall()
        with self._lock:
            marks = self.log.marks() if self.log is not None else (0, 0)
            token = (self._version, *marks)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == token:
                return cached[1]
            try:
                found = self._read(key, marks)
            except sqlite3.DatabaseError as exc:
                self._recover(exc, lock_free=True)  # a search thread: see _fold_now
                found = self._read(key, marks)
            if len(self._cache) >= CACHE_KEYS:
                self._cache.clear()
            self._cache[key] = (token, found)
            return found

    def _read(self, key: str, marks: tuple[int, int]) -> Recall:
        """Read ``key`` from the file and the log's tail (``marks``: where the log ended just before)."""
        pairs: dict[str, PairStats] = {}
        rows, at, stats, history = self._select(key)
        for row in rows:
            if row not in self._pending:  # changed here since the fold: the pending entry says
                item_id = self.view.find_id(row)
                if item_id is not None:
                    pairs[item_id] = PairStats(prior=PREDICTED_PRIOR)
        for row in self._pending_keys.get(key, ()):
            entry = self._pending[row]
            if entry is not None:
                pairs[entry[0]] = PairStats(prior=PREDICTED_PRIOR)
        if self.log is None:
            return Recall(pairs)
        for item_id, impressions, acted in stats:
            pair = pairs.setdefault(str(item_id), PairStats())
            pair.impressions += float(impressions)
            pair.actions += float(acted)
        searches, actions = (float(history[0]), float(history[1])) if history is not None else (0.0, 0.0)
        if marks == (at["impressions"], at["events"]):  # the fold is at the log's end: no tail to read
            return Recall(pairs, searches, actions)
        for _, _, shown in self.log.shown_since(at["impressions"], key):  # logged since the fold
            searches += 1.0
            for position, item_id in enumerate(shown, start=1):
                pairs.setdefault(item_id, PairStats()).impressions += examination(position)
        for _, _, item_id, reward in self.log.rewards_since(at["events"], key):
            capped = min(reward, 1.0)
            pairs.setdefault(item_id, PairStats()).actions += capped
            actions += capped
        return Recall(pairs, searches, actions)

    def _select(self, key: str) -> tuple[list[int], dict[str, int], list[tuple[str, float, float]], Any]:
        """One snapshot of the file for ``key``: prior rows, log positions, statistics and history, read by
        one statement (a snapshot by itself, one round trip)."""
        db = self._db
        held = self._mirror.rows(key) if self.priors else []
        if self.log is None:
            if held is None:
                held = [int(r) for (r,) in db.execute("SELECT row FROM prior WHERE key = ?", (key,))]
            return held, {}, [], None
        rows, at, stats, history = held or [], {}, [], None
        for part, a, b, c in db.execute(_SELECT_ALL if held is None else _SELECT_FEEDBACK, (key,)):
            if part == 0:
                rows.append(int(a))
            elif part == 1:
                at[str(a)] = int(b)
            elif part == 2:
                stats.append((a, b, c))
            else:
                history = (b, c)
        return rows, at, stats, history

    # -- writing --------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Fold the store's and the log's changes into the file, when any are pending (else write nothing)."""
        with self._lock:
            if self._dirty:
                self._fold_now()
            elif self.log is not None:
                at = self._positions()
                if self.log.marks() != (at["impressions"], at["events"]):
                    self._fold_now()

    def _fold_now(self, *, store: bool = True) -> None:
        """Fold now. A search thread folds the log alone (``store=False``): folding the store may read the
        engine's catalog under the engine's lock, which a writer waiting for this state's lock holds."""
        try:
            self._fold(store=store)
        except sqlite3.DatabaseError as exc:
            if is_full(exc):  # the file is sound and the disk full: nothing to rebuild, the changes stay pending
                raise disk_full(self.path.parent if self.path is not None else Path("."), exc) from exc
            self._recover(exc, lock_free=not store)

    def _fold(self, *, store: bool = True, lock_free: bool = False) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
        try:
            at = self._positions()
            wrote = self.priors and store and self._fold_store(at["store_seq"], lock_free)
            if self.log is not None:
                self._fold_log(at["impressions"], at["events"])
            db.execute("COMMIT")
            if wrote:  # the priors held in memory are the file's no more (a pass reading meanwhile is discarded)
                self._mirror.changed()
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if store:
            self._pending.clear()
            self._pending_keys.clear()
            self._dirty = False
        self._logged = 0
        self._version += 1
        self._cache.clear()

    def _fold_store(self, since: int, lock_free: bool) -> bool:
        """Fold the store's changes after ``since`` (everything when 0) into ``prior``; whether it wrote."""
        db, view = self._db, self.view
        last = view.last_seq()  # read before the changes: one committed meanwhile is folded again next time
        if since == last:
            return False
        deleted: list[int] = []
        if since > last or since == 0:  # a new fold (or a store replaced under it): every live item
            db.execute("DELETE FROM prior")
            batches = self._every_item(lock_free)
        else:
            latest = dict(view.changes_since(since))
            puts = [row for row, op in latest.items() if op == "put"]
            deleted = [row for row, op in latest.items() if op == "delete"]
            _delete_rows(db, puts)
            batches = self._items_of(puts, deleted)
        for found in batches:
            db.executemany("INSERT OR IGNORE INTO prior VALUES (?, ?)", sorted(self._keys_of(found)))
        _delete_rows(db, deleted)
        db.execute("UPDATE meta SET value = ? WHERE name = 'store_seq'", (last,))
        return True

    def _items_of(self, rows: Sequence[int], gone: list[int]) -> Iterator[dict[int, StoredItem]]:
        """The items of ``rows`` in batches; rows no longer stored are added to ``gone``."""
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            found = self.view.items_of(chunk)
            gone += [row for row in chunk if row not in found]
            yield found

    def _every_item(self, lock_free: bool) -> Iterator[dict[int, StoredItem]]:
        """Every stored item, in batches: the rows this engine knows and those the change log adds (fast);
        or, ``lock_free``, the store's own iteration (its vectors read too, but no engine lock taken)."""
        if not lock_free:
            rows = set(self.view.all_rows().tolist())
            rows.update(row for row, op in self.view.changes_since(0) if op == "put")  # written since it read
            yield from self._items_of(sorted(rows), [])
            return
        batch: dict[int, StoredItem] = {}
        for stored in self.view.iter_items():
            batch[stored.row] = stored
            if len(batch) >= BATCH:
                yield batch
                batch = {}
        yield batch

    def _keys_of(self, found: dict[int, StoredItem]) -> Iterator[tuple[str, int]]:
        for row, stored in found.items():
            entry = self._pending.get(row)
            keys = entry[1] if entry is not None and entry[2] == stored.item else predicted_keys(stored.item)
            yield from ((key, row) for key in keys)

    def _fold_log(self, impressions: int, events: int) -> None:
        """Fold the log's impressions and events after the positions given into ``pair`` and ``history``."""
        assert self.log is not None
        db = self._db
        while batch := self.log.shown_since(impressions, limit=BATCH):
            pairs: dict[tuple[str, str], list[float]] = {}
            history: dict[str, list[float]] = {}
            for _, key, shown in batch:
                if key:
                    history.setdefault(key, [0.0, 0.0])[0] += 1.0
                    for position, item_id in enumerate(shown, start=1):
                        pairs.setdefault((key, item_id), [0.0, 0.0])[0] += examination(position)
            _add(db, pairs, history)
            impressions = batch[-1][0]
        while events_batch := self.log.rewards_since(events, limit=BATCH):
            pairs, history = {}, {}
            for _, key, item_id, reward in events_batch:
                if key:
                    capped = min(reward, 1.0)
                    pairs.setdefault((key, item_id), [0.0, 0.0])[1] += capped
                    history.setdefault(key, [0.0, 0.0])[1] += capped
            _add(db, pairs, history)
            events = events_batch[-1][0]
        db.executemany("UPDATE meta SET value = ? WHERE name = ?", [(impressions, "impressions"), (events, "events")])

    def _recover(self, exc: Exception, *, lock_free: bool) -> None:
        """The file broke under us: start it again from the store and the log."""
        log.warning("%s: the memory index failed (%s); rebuilding it from the store", self.path or "memory", exc)
        self._mirror.changed()
        self._db.close()
        if self.path is not None:
            self._remove()
        self._db = self._open()
        self._fold(lock_free=lock_free)

    def close(self) -> None:
        self._mirror.close()
        with self._lock:
            self._db.close()


def _delete_rows(db: sqlite3.Connection, rows: Sequence[int]) -> None:
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        db.execute(f"DELETE FROM prior WHERE row IN ({','.join('?' * len(chunk))})", chunk)


def _add(db: sqlite3.Connection, pairs: dict[tuple[str, str], list[float]], history: dict[str, list[float]]) -> None:
    db.executemany(
        "INSERT INTO pair VALUES (?, ?, ?, ?) ON CONFLICT (key, item) DO UPDATE"
        " SET impressions = impressions + excluded.impressions, actions = actions + excluded.actions",
        _flat(pairs.items()),
    )
    db.executemany(
        "INSERT INTO history VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET searches = searches + excluded.searches, actions = actions + excluded.actions",
        [(key, s, a) for key, (s, a) in history.items()],
    )


def _flat(pairs: Iterable[tuple[tuple[str, str], list[float]]]) -> list[tuple[Any, ...]]:
    return [(key, item, i, a) for (key, item), (i, a) in pairs]
