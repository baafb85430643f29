"""Whether an index folder is open: every open store holds a shared lock on ``<index>/xmodal.lock``.

A store (so every engine, server and CLI command using the folder) holds an OS file lock (``flock``),
shared, on ``xmodal.lock`` from the moment it opens until it closes; any number may hold it at once. A
restore (:mod:`xmodal.restore`) takes it exclusively and without waiting before it replaces the folder:
while a server or command has the index open the restore is refused, and while a restore runs an open is.

The lock is released when the store closes or the process dies (no stale lock to clean up after a crash).
``flock`` locks are not the POSIX record locks SQLite uses, so neither disturbs the other. Where the lock
file cannot be created (a read-only disk) or the platform has no ``flock`` (Windows), nothing is locked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import StorageError, ValidationError

LOCK_FILE = "xmodal.lock"


class FolderUse:
    """A held lock on a folder's :data:`LOCK_FILE` (shared: an open store; exclusive: a restore)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        """Release the lock (a second call does nothing)."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases its flock
            self._fd = -1


def open_shared(folder: Path) -> FolderUse | None:
    """Mark ``folder`` as in use by an open store: a shared lock, or a :class:`StorageError` when a restore
    is replacing the folder. None when the folder cannot be locked (see the module notes)."""
    try:
        return _lock(folder, exclusive=False)
    except BlockingIOError:
        raise StorageError(
            f"{folder} is being replaced by `xmodal restore`; open it again once the restore has finished"
        ) from None


def take_exclusive(folder: Path) -> FolderUse | None:
    """The exclusive lock of a restore over ``folder``, or a :class:`ValidationError` naming the fix when a
    store there is open (a running server, a command, another restore). None when it cannot be locked."""
    try:
        return _lock(folder, exclusive=True)
    except BlockingIOError:
        raise ValidationError(
            "index",
            f"{folder} is open in another process (a running `xmodal serve`, or a command using it), so it cannot "
            "be replaced while it serves",
            "stop that server or command first, then restore; or restore into a new folder for the server to use",
        ) from None


def _lock(folder: Path, *, exclusive: bool) -> FolderUse | None:
    """The lock (None: no lock possible here); ``BlockingIOError`` when another holder has it in a conflicting
    mode."""
    if sys.platform == "win32":
        return None
    import fcntl

    path = folder / LOCK_FILE
    while True:
        fd = _open(path)
        if fd < 0:
            return None
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        except OSError:
            os.close(fd)
            return None
        if _same_file(fd, path):
            return FolderUse(fd)
        os.close(fd)  # the folder was replaced (a restore swapped it in) while this opened: lock the new one


def _open(path: Path) -> int:
    """A descriptor of the lock file (created when missing), or -1 when it cannot be had."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        try:
            return os.open(path, os.O_RDONLY)  # a read-only disk: lock it if it is there
        except OSError:
            return -1


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
