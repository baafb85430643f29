"""The store's health: recognising a damaged SQLite file, checking it, and the error that says what to do.

SQLite reports damage as ``SQLITE_CORRUPT`` ("database disk image is malformed") or ``SQLITE_NOTADB``
("file is not a database"), on whatever statement first reads the damaged page. :class:`GuardedLock` (the
store's and the feedback log's lock) turns such an error, raised anywhere while it is held, into a
:class:`~xmodal.errors.StorageError` naming the file and the recovery path, so no caller shows a raw
traceback; likewise a disk that fails a read or write (``SQLITE_IOERR_*``: an ``fsync`` answering ``EIO``),
see :func:`io_error`. :func:`integrity_problems` runs ``PRAGMA quick_check`` (every page's structure, O(file size))
or ``PRAGMA integrity_check`` (also that every index matches its table).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from ..errors import StorageError
from .space import disk_full, is_full

CORRUPT_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
IO_CODE = "SQLITE_IOERR"  # and its extended codes: SQLITE_IOERR_FSYNC, SQLITE_IOERR_WRITE, ...


def is_corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite reporting a damaged (or foreign) database file."""
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        return name.startswith(CORRUPT_CODES)
    return type(exc) is sqlite3.DatabaseError  # an SQLite without error names: corruption is its plain error


def is_io_error(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite reporting that the disk failed a read, write or sync of its files."""
    name = getattr(exc, "sqlite_errorname", None)
    return isinstance(exc, sqlite3.Error) and isinstance(name, str) and name.startswith(IO_CODE)


def io_error(path: Path, exc: BaseException) -> StorageError:
    """The error for a disk that failed SQLite's read, write or ``fsync`` of ``path``: a write under way is
    not acknowledged (SQLite rolled it back), and retrying it is safe once the disk answers."""
    name = getattr(exc, "sqlite_errorname", "")
    return StorageError(
        f"{path}: the disk reported an I/O error ({exc}{', ' + name if name else ''}); the write under way was "
        f"not acknowledged: check the disk holding {path.parent} (the system log, e.g. `dmesg`), then retry "
        "(retrying an add or a delete is safe)"
    )


def recovery(path: Path) -> str:
    """What to do about a damaged store at ``path``."""
    folder = path.parent
    return (
        f"stop every process using {folder}, then restore it from a backup (`xmodal --index {folder} restore BACKUP "
        f"--replace`, for a backup `xmodal backup` wrote; or copy back a {path.name} saved otherwise); "
        f"`xmodal --index {folder} check --full` lists the damage, `sqlite3 {path} .recover` salvages what is "
        f"readable into a new file, and `xmodal --index {folder} check --repair` rebuilds the vector indexes and "
        "the extensions' state (derived data) from a sound store; or re-add the catalog into a new index folder"
    )


def corrupt_error(path: Path, problem: object) -> StorageError:
    """The error for a damaged store: the file, what SQLite said, and :func:`recovery`."""
    return StorageError(f"{path}: the store is damaged ({problem}); {recovery(path)}")


class GuardedLock:
    """A re-entrant lock for one SQLite connection: a corruption error raised while it is held leaves the
    block as a :class:`StorageError` (see :func:`corrupt_error`), a no-space error as a
    :class:`~xmodal.errors.DiskFull` (see :mod:`.space`), an I/O error as a :class:`StorageError` (see
    :func:`io_error`); any other error leaves as it is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()

    def __enter__(self) -> GuardedLock:
        self._lock.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.DatabaseError) and is_corrupt(exc):
            raise corrupt_error(self.path, exc) from exc
        if exc is not None and is_full(exc):
            raise disk_full(self.path.parent, exc) from exc
        if exc is not None and is_io_error(exc):
            raise io_error(self.path, exc) from exc


def integrity_problems(db: sqlite3.Connection, *, full: bool = False, limit: int = 20) -> list[str]:
    """What ``PRAGMA quick_check`` (``integrity_check`` with ``full``) finds wrong, at most ``limit`` lines;
    empty when the file is sound. A file too damaged to be checked is one problem."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        found = [str(row[0]) for row in db.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()]
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise  # a failing disk, a lock, a missing file: not damage to report, an error to say
        return [str(exc)]
    return [] if found == ["ok"] else found


def store_file_problems(path: Path, *, full: bool = False) -> list[str]:
    """:func:`integrity_problems` of the SQLite file ``path``, opened read-only (nothing else is read); a file
    that cannot be read at all for another reason than damage is a :class:`StorageError` saying so."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return integrity_problems(db, full=full)
        finally:
            db.close()
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            return [str(exc)]
        raise StorageError(
            f"{path}: cannot be read ({exc}); it is not found damaged: check that it exists, is a file this user "
            "may read and that the disk answers, then retry"
        ) from exc
