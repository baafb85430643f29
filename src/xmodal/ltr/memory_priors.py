"""The memory index's predicted-query priors held in memory: per normalised query, the rows its ``prior`` table
lists, as this process's file has them (:mod:`xmodal.ltr.memory_state`).

A search reads its query's priors. Read from ``ltr/memory.sqlite`` that is a SQLite round trip (and a file
lock) per search; read for every key when the index opens it would be the set-up the memory index no longer
does. So a look-up reads the file until the first search's background pass has read the whole table (in
one statement, on a connection of its own); from then on a look-up is a dictionary read. The table changes
only when this process folds the store's changes into it (:meth:`PriorsMirror.changed` drops what is held,
and the next search starts a new pass; a pass that overlaps a fold is discarded), or when another process
folds its changes: those rows reach this process through the change log and are held as pending changes,
which override the file's rows, as they do for the file itself. Above :data:`MAX_PAIRS` the table stays on
disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: (key, row) pairs read per fetch by the background pass
CHUNK = 5000
#: a table larger than this stays on disk (read per search): ≈ 100 bytes a pair in memory
MAX_PAIRS = 2_000_000


class PriorsMirror:
    """Key → rows of the ``prior`` table at ``path()`` (None: the state is not on disk, nothing is held)."""

    def __init__(self, path: Callable[[], Path | None]) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._rows: dict[str, int | tuple[int, ...]] | None = None
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._too_large = False
        self._stop = threading.Event()

    def rows(self, key: str) -> list[int] | None:
        """The rows the file lists for ``key``, in row order; None while not held (read the file)."""
        held = self._rows
        if held is None:
            self._start()
            return None
        found = held.get(key, ())
        return [found] if isinstance(found, int) else list(found)

    def changed(self) -> None:
        """This process rewrote the file's priors: what is held is dropped (a pass under way is discarded)."""
        with self._lock:
            self._rows = None
            self._gen += 1
            self._thread = None

    def _start(self) -> None:
        if self._too_large or self._stop.is_set():
            return
        with self._lock:
            if self._thread is not None:
                return
            path = self._path()
            if path is None:
                return
            self._thread = threading.Thread(
                target=self._load, args=(path, self._gen), name="xmodal-memory-priors", daemon=True
            )
            thread = self._thread
        thread.start()

    def _load(self, path: Path, gen: int) -> None:
        try:
            read = self._read(path)
        except (OSError, sqlite3.Error) as exc:
            log.warning("%s: reading the priors in the background failed (%s): read per search", path, exc)
            return
        if read is None:
            return
        with self._lock:
            if gen == self._gen:
                self._rows = read

    def _read(self, path: Path) -> dict[str, int | tuple[int, ...]] | None:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            out: dict[str, int | tuple[int, ...]] = {}
            pairs = 0
            key: str | None = None
            rows: list[int] = []  # the table's key order: one key's rows come together, in row order
            cursor = db.execute("SELECT key, row FROM prior ORDER BY key, row")
            while chunk := cursor.fetchmany(CHUNK):
                if self._stop.is_set():
                    return None
                pairs += len(chunk)
                if pairs > MAX_PAIRS:
                    self._too_large = True
                    log.info("%s: over %d predicted-query priors: read per search", path, MAX_PAIRS)
                    return None
                for k, row in chunk:
                    if k != key:
                        if key is not None:
                            out[key] = rows[0] if len(rows) == 1 else tuple(rows)
                        key, rows = k, []
                    rows.append(int(row))
            if key is not None:
                out[key] = rows[0] if len(rows) == 1 else tuple(rows)
            return out
        finally:
            db.close()

    def close(self) -> None:
        """Stop the background pass (it finishes the chunk it is reading)."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
