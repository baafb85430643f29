"""Running out of disk space: recognising it, the error that says what to do, and reading on a full disk.

A write that finds no space (SQLite's ``SQLITE_FULL``, an ``OSError`` with ``ENOSPC``/``EDQUOT``) becomes a
:class:`~xmodal.errors.DiskFull` naming the index folder and the fix. Reads must keep working on a full disk,
and a SQLite file in WAL mode needs its shared-memory index (``-shm``, 32 KiB) to be read: where no process
has it open, SQLite creates it on the first read and fails with ``SQLITE_IOERR_SHMSIZE`` when the disk has no
room for it. :func:`connect` then opens the file read-only with ``readonly_shm=1`` over empty ``-wal`` and
``-shm`` files (an empty file needs no data block): SQLite reads the WAL into private memory instead, and
the caller writes nothing: SQLite shares that read-only index with every connection of the process to the
file, so writing again takes a fresh process (or every connection closed) once space is freed.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DiskFull

#: SQLite's names for a write with no space left (``SQLITE_FULL`` is also ``PRAGMA max_page_count`` reached).
FULL_CODES = ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


#: Below this many free bytes, an ``OSError`` without an errno (numpy's short write) counts as no space.
LOW_SPACE = 1 << 20


def is_full(exc: BaseException, folder: Path | None = None) -> bool:
    """Whether ``exc`` says the disk (or the store's page limit) has no space left. An ``OSError`` without
    an errno (numpy's "N requested and M written") counts when the disk of ``folder`` is (nearly) full."""
    if isinstance(exc, OSError):
        if exc.errno is None and folder is not None:
            return _free(folder) < LOW_SPACE
        return exc.errno in NO_SPACE
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", None) in FULL_CODES
    return False


def disk_full(folder: Path, problem: object, *, reopen: bool = False) -> DiskFull:
    """The error for a write that found no space in ``folder``: what happened and what to do (``reopen``:
    the index was opened read-only, so it must be opened again once there is space)."""
    then = "reopen the index (restart the server or command)" if reopen else "retry"
    return DiskFull(
        str(folder),
        f"{folder}: no space left on the disk ({problem}); the write was not kept: free space on the disk "
        f"holding {folder}, then {then} (searches keep working meanwhile)",
    )


def _free(folder: Path) -> int:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return LOW_SPACE


@contextmanager
def space_guard(folder: Path) -> Iterator[None]:
    """Turn a no-space error raised in the block into :func:`disk_full` for ``folder``."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if is_full(exc, folder):
            raise disk_full(folder, exc) from exc
        raise


def connect(path: Path, *, timeout: float = 5.0) -> tuple[sqlite3.Connection, bool]:
    """A connection to the WAL-mode SQLite file ``path`` (autocommit, any thread) and whether it is read-only.

    Read-write when possible. When the disk has no room for the shared-memory index and ``path`` exists, a
    read-only connection (see the module notes); a new file on a full disk is :class:`DiskFull`."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=ON")  # freed pages are zeroed: a deleted item leaves no bytes behind
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read maps the -shm file
        return db, False
    except sqlite3.Error as exc:
        db.close()
        if not is_full(exc):
            raise
        if not path.is_file() or not path.stat().st_size:
            raise disk_full(path.parent, exc) from exc
    with space_guard(path.parent):
        for suffix in ("-wal", "-shm"):
            with open(f"{path}{suffix}", "ab"):  # kept as it is when it exists (another process may use it)
                pass
    uri = f"{path.resolve().as_uri()}?mode=ro&readonly_shm=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=timeout), True


def create_tables(db: sqlite3.Connection, schema: str, *, new: bool) -> None:
    """Run ``schema`` (``CREATE … IF NOT EXISTS`` statements). On a ``new`` file in one transaction: one commit,
    one sync of the file's log, where each statement on its own took one (another process creating the same
    tables waits, then finds them); on an existing one as it is, which writes nothing unless a table is missing."""
    if not new:
        db.executescript(schema)
        return
    try:
        db.executescript("BEGIN IMMEDIATE;" + schema)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
