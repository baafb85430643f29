"""Read-only SQLite connections, one per thread, so that reads never wait for each other or for a write.

A store (and the feedback log) writes through one connection under one lock. Searches read a lot —
the full-text index's postings and statistics, the log's recent impressions — and on that connection a
long read (a 4,096-character query's BM25F: tens of milliseconds) made every other search and every
write wait its turn. In WAL mode SQLite lets any number of readers run beside one writer, each on a
snapshot of what was committed when its statement started, so these reads go to a connection of the
calling thread instead (opened on first use, ``query_only``, a small page cache; memory-mapped I/O
shares the file's pages between them). A read there sees every committed write, never one still in
flight: reads that belong to a write (inside its transaction) stay on the writer's connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .health import GuardedLock
from .space import connect

#: each reader's own page cache (KiB; negative: a size, not a page count) and the memory-mapped window
CACHE_KIB = 2048
MMAP_BYTES = 256 * 1024 * 1024


class Readers:
    """Thread-local read-only connections to one SQLite file; ``prepare`` runs on each new connection."""

    def __init__(self, path: Path, prepare: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = path
        self._prepare = prepare
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; a damaged page or a full disk met in the block is the store's clear
        error (:class:`~.health.GuardedLock`), as on the writer's connection."""
        found: tuple[sqlite3.Connection, GuardedLock] | None = getattr(self._local, "reader", None)
        if found is None:
            found = self._local.reader = (self._open(), GuardedLock(self.path))
        db, guard = found
        with guard:
            yield db

    def _open(self) -> sqlite3.Connection:
        db, _ = connect(self.path)
        if self._prepare is not None:
            self._prepare(db)  # before query_only: it may create temporary tables
        db.execute("PRAGMA query_only = ON")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        with self._lock:
            if self._closed:
                db.close()
                raise sqlite3.ProgrammingError(f"{self.path}: the store is closed")
            self._all.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection (a thread that reads afterwards gets an error, not a new one)."""
        with self._lock:
            self._closed = True
            opened, self._all = self._all, []
        for db in opened:
            db.close()
