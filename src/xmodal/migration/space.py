"""The next vector set of an index being re-embedded: its new vectors by (row, kind), the items the new encoder
refused, and the state of the build, kept beside the index's own vectors until ``--switch`` or ``--abort``.

Two homes, one logic (:class:`Space`): an index folder keeps them in ``<index>/reindex/<encoder>-<key>/next.sqlite``
(:class:`NextSpace`; the folder keyed by the new encoder's identity, so a run can only resume with the same
encoder); a PostgreSQL store in tables of its own schema, ``reindex_next_meta``, ``reindex_next_vectors`` and
``reindex_next_failures`` (:class:`~xmodal.migration.pg_space.PgNextSpace`), which every server of the store
sees. The state:

- ``encoder``: the new encoder's config (never a secret: the options it records);
- ``total``: items in the index when the run started; ``done``: items encoded so far; ``cursor``: the last
  row the scan finished (the scan resumes after it); ``scanned``: the scan reached the end;
- ``tail_seq``: the store change the new vectors reflect (the scan started after reading it; the changes
  after it are replayed onto the new vectors, so writes during the run reach them);
- ``epoch``: the vector epoch ``--switch`` is committing (set just before its transaction).

A batch's vectors and the cursor are written in one transaction: a run killed at any point resumes after
its last committed batch and loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

FOLDER = "reindex"
FILE = "next.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (row INTEGER NOT NULL, kind TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (row, kind));
CREATE TABLE IF NOT EXISTS failures (row INTEGER PRIMARY KEY, id TEXT NOT NULL, reason TEXT NOT NULL);
"""


class Sql(Protocol):
    """One transaction's statements, written with ``?`` placeholders whatever the database."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class SqliteSql:
    """:class:`Sql` on a SQLite connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute(sql, tuple(params)).fetchall())

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.db.executemany(sql, rows)


def blob(vector: np.ndarray) -> bytes:
    """A vector as stored: float32 bytes."""
    return np.ascontiguousarray(vector, np.float32).tobytes()


def put_meta(db: Sql, table: str, values: Mapping[str, Any]) -> None:
    """Write JSON ``values`` by key into the key/value ``table`` (replacing what the keys held)."""
    db.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in values])
    db.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])


def space_key(config: Mapping[str, Any]) -> str:
    """The folder name of an encoder's next vector set: its name and a hash of its whole config."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(config.get("name", "encoder")))
    return f"{safe}-{digest}"


def initial_state(config: Mapping[str, Any], started_seq: int, total: int) -> dict[str, Any]:
    """The state of a new next vector set (``started_at`` comes last: a set without it did not finish starting)."""
    return {"encoder": dict(config), "total": total, "done": 0, "cursor": 0, "scanned": False, "tail_seq": started_seq}


class Space(ABC):
    """A next vector set (see the module notes): the logic, over three tables named by the subclass."""

    #: the tables' names as the space's own statements name them
    META, VECTORS, FAILURES = "meta", "vectors", "failures"

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the set is kept (for messages and ``status``)."""

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read statement."""

    @abstractmethod
    def _transaction(self, work: Callable[[Sql], None]) -> None:
        """``work`` in one transaction (writers of this set in turn)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def drop(self) -> None:
        """Close and delete this next vector set."""

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {str(k): json.loads(v) for k, v in self._rows(f"SELECT key, value FROM {self.META}")}

    def get(self, key: str, default: Any = None) -> Any:
        found = self._rows(f"SELECT value FROM {self.META} WHERE key = ?", (key,))
        return default if not found else json.loads(found[0][0])

    def set(self, **values: Any) -> None:
        self._transaction(lambda db: put_meta(db, self.META, values))

    # -- writes -------------------------------------------------------------------------------
    def commit(
        self,
        vectors: Iterable[tuple[int, Mapping[str, np.ndarray]]],
        failures: Iterable[tuple[int, str, str]] = (),
        *,
        deleted: Sequence[int] = (),
        **state: Any,
    ) -> None:
        """One transaction: the rows' new vectors (replacing any they had; their failure cleared), the rows
        refused (``(row, id, reason)``: their vectors removed), the rows deleted since, and the state values
        given."""
        refused = {int(row): (item_id, reason) for row, item_id, reason in failures}
        made = {int(row): by_kind for row, by_kind in vectors if int(row) not in refused}
        touched = [(row,) for row in {*made, *refused, *(int(r) for r in deleted)}]

        def work(db: Sql) -> None:
            db.executemany(f"DELETE FROM {self.VECTORS} WHERE row = ?", touched)
            db.executemany(f"DELETE FROM {self.FAILURES} WHERE row = ?", touched)
            db.executemany(
                f"INSERT INTO {self.VECTORS} VALUES (?, ?, ?)",
                [(row, kind, blob(v)) for row, by_kind in made.items() for kind, v in by_kind.items()],
            )
            db.executemany(
                f"INSERT INTO {self.FAILURES} VALUES (?, ?, ?)",
                [(row, item_id, reason) for row, (item_id, reason) in refused.items()],
            )
            put_meta(db, self.META, state)

        self._transaction(work)

    # -- reads --------------------------------------------------------------------------------
    def failures(self) -> list[tuple[int, str, str]]:
        found = self._rows(f"SELECT row, id, reason FROM {self.FAILURES} ORDER BY row")
        return [(int(r), str(i), str(m)) for r, i, m in found]

    def vector_count(self) -> int:
        return int(self._rows(f"SELECT COUNT(DISTINCT row) FROM {self.VECTORS}")[0][0])

    def matrices(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every new vector by kind: ``(rows [n], vectors [n, d])``."""
        found: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for row, kind, data in self._rows(f"SELECT row, kind, vector FROM {self.VECTORS} ORDER BY kind, row"):
            rows, vecs = found.setdefault(str(kind), ([], []))
            rows.append(int(row))
            vecs.append(np.frombuffer(bytes(data), dtype=np.float32))
        return {kind: (np.asarray(rows, np.int64), np.stack(vecs)) for kind, (rows, vecs) in found.items()}

    def summary(self) -> dict[str, Any]:
        """What ``info`` shows of this reindex."""
        state = self.state()
        total = max(int(state.get("total", 0)), int(state.get("done", 0)))
        return {
            "encoder": state.get("encoder", {}).get("name"),
            "done": int(state.get("done", 0)),
            "total": total,
            "scanned": bool(state.get("scanned")),
            "failed": len(self.failures()),
        }


class NextSpace(Space):
    """One next vector set in an index folder (see the module notes). Use :meth:`find` or :meth:`create`."""

    def __init__(self, folder: Path, *, new: bool = False) -> None:
        self.folder = folder
        self.path = folder / FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA synchronous=NORMAL")
        if new:  # an existing one is opened without writing (a build may be writing to it)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    @property
    def where(self) -> str:
        return str(self.folder)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, tuple(params)).fetchall())

    def _transaction(self, work: Callable[[Sql], None]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            work(SqliteSql(db))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- finding ------------------------------------------------------------------------------
    @staticmethod
    def folders(root: Path) -> list[Path]:
        """The next vector sets under the index folder ``root`` (at most one in normal use)."""
        base = root / FOLDER
        return sorted(p for p in base.iterdir() if (p / FILE).is_file()) if base.is_dir() else []

    @classmethod
    def find(cls, root: Path, *, repair: bool = True) -> NextSpace | None:
        """The index's next vector set, or None when no reindex is under way; a start that did not finish
        is removed (``repair``) or passed over."""
        for folder in cls.folders(root):
            space = cls(folder)
            try:
                if space.get("started_at") is not None:  # written last by create()
                    return space
            except sqlite3.OperationalError:  # a start killed before its tables were made
                pass
            if repair:
                space.drop()
            else:
                space.close()
        return None

    @classmethod
    def create(cls, root: Path, config: Mapping[str, Any], *, started_seq: int, total: int) -> NextSpace:
        """A new, empty next vector set for the encoder ``config``."""
        folder = root / FOLDER / space_key(config)
        folder.mkdir(parents=True, exist_ok=True)
        space = cls(folder, new=True)
        space.set(**initial_state(config, started_seq, total))
        space.set(started_at=time.time())  # last: a space without it is a start that did not finish
        return space

    def close(self) -> None:
        self._db.close()

    def drop(self) -> None:
        """Close and delete this next vector set (and the reindex folder once empty)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def reindex_summary(root: Path) -> dict[str, Any] | None:
    """What ``info`` shows of a reindex under way in the index folder ``root`` (None when there is none)."""
    space = NextSpace.find(root, repair=False)
    if space is None:
        return None
    try:
        return space.summary()
    finally:
        space.close()
