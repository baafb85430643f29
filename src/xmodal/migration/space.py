"""The next vector set of an index being re-embedded: ``<index>/reindex/<encoder>-<key>/next.sqlite``.

The folder is keyed by the new encoder's identity (its config, hashed), so a run can only resume with the
same encoder. It holds the new vectors by (row, kind), the items the new encoder refused, and the state:

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "reindex"
FILE = "next.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (row INTEGER NOT NULL, kind TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (row, kind));
CREATE TABLE IF NOT EXISTS failures (row INTEGER PRIMARY KEY, id TEXT NOT NULL, reason TEXT NOT NULL);
"""


def space_key(config: Mapping[str, Any]) -> str:
    """The folder name of an encoder's next vector set: its name and a hash of its whole config."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(config.get("name", "encoder")))
    return f"{safe}-{digest}"


class NextSpace:
    """One next vector set on disk (see the module notes). Use :meth:`find` or :meth:`create`."""

    def __init__(self, folder: Path, *, new: bool = False) -> None:
        self.folder = folder
        self.path = folder / FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA synchronous=NORMAL")
        if new:  # an existing one is opened without writing (a build may be writing to it)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

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
        space.set(
            encoder=dict(config),
            total=total,
            done=0,
            cursor=0,
            scanned=False,
            tail_seq=started_seq,
        )
        space.set(started_at=time.time())  # last: a space without it is a start that did not finish
        return space

    # -- state --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {str(k): json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, **values: Any) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
        )

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
        refused (``(row, id, reason)``), the rows deleted since, and the state values given."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for row, by_kind in vectors:
                db.execute("DELETE FROM vectors WHERE row = ?", (row,))
                db.execute("DELETE FROM failures WHERE row = ?", (row,))
                db.executemany(
                    "INSERT INTO vectors VALUES (?, ?, ?)",
                    [(row, kind, np.ascontiguousarray(v, np.float32).tobytes()) for kind, v in by_kind.items()],
                )
            for row, item_id, reason in failures:
                db.execute("DELETE FROM vectors WHERE row = ?", (row,))
                db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (row, item_id, reason))
            for row in deleted:
                db.execute("DELETE FROM vectors WHERE row = ?", (row,))
                db.execute("DELETE FROM failures WHERE row = ?", (row,))
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in state.items()])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- reads --------------------------------------------------------------------------------
    def failures(self) -> list[tuple[int, str, str]]:
        return [(int(r), str(i), str(m)) for r, i, m in self._db.execute("SELECT row, id, reason FROM failures")]

    def vector_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(DISTINCT row) FROM vectors").fetchone()[0])

    def matrices(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every new vector by kind: ``(rows [n], vectors [n, d])``."""
        found: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for row, kind, blob in self._db.execute("SELECT row, kind, vector FROM vectors ORDER BY kind, row"):
            rows, vecs = found.setdefault(str(kind), ([], []))
            rows.append(int(row))
            vecs.append(np.frombuffer(blob, dtype=np.float32))
        return {kind: (np.asarray(rows, np.int64), np.stack(vecs)) for kind, (rows, vecs) in found.items()}

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
        state = space.state()
        total = max(int(state.get("total", 0)), int(state.get("done", 0)))
        return {
            "encoder": state.get("encoder", {}).get("name"),
            "done": int(state.get("done", 0)),
            "total": total,
            "scanned": bool(state.get("scanned")),
            "failed": len(space.failures()),
        }
    finally:
        space.close()
