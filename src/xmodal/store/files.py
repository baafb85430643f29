"""Small file-system helpers for derived data written as whole folders or whole JSON files, and the lock that
keeps two processes checkpointing into one index folder from tearing each other's files.

The lock is an OS file lock (``flock``) on the folder that holds the derived folder (the index folder for
``index/`` and ``genret/``): no lock file is made, so an index on a read-only disk is still read. Writers
(:func:`write_dir`, :func:`folder_lock`) hold it exclusively; readers of a checkpoint (:func:`read_lock`)
hold it shared, so they never see a folder half swapped. The lock is released when the block ends, or
when the process dies. Where the platform has no ``flock`` (Windows) the blocks run unlocked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from .space import space_guard


def fresh_dir(directory: Path) -> Path:
    """An empty sibling folder ``<name>.tmp`` to write a new version of ``directory`` into."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def swap_dir(tmp: Path, directory: Path) -> None:
    """Put the folder ``tmp`` in the place of ``directory``; a crash leaves the old or the new one."""
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def folder_lock(folder: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an OS lock on ``folder`` while the block runs: exclusive (a writer) or ``shared`` (a reader).

    Not re-entrant: a thread holding it must not take it again (it would wait for itself). A folder that
    does not exist or cannot be opened is not locked (nothing is written there by anyone yet)."""
    if sys.platform == "win32":
        yield
        return
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


def read_lock(directory: Path) -> AbstractContextManager[None]:
    """A shared lock for reading the derived folder ``directory`` (see :func:`write_dir`)."""
    return folder_lock(directory.parent, shared=True)


def write_dir(directory: Path, write: Callable[[Path], None]) -> None:
    """Write a new version of ``directory``: ``write`` fills a fresh folder, which is then swapped in, all
    under an exclusive lock on the folder that holds it (two processes checkpointing at once take turns).
    A write that finds no space is a :class:`~xmodal.errors.DiskFull` and leaves no partial folder."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory.parent):
        tmp = fresh_dir(directory)
        try:
            with space_guard(directory.parent):  # judged while the partial files still fill the disk
                write(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        swap_dir(tmp, directory)


def write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary file of its own beside ``path``, then rename it onto ``path`` (its
    folder made if needed): readers never see a partial file, two writers of one path never share a temporary
    file, and on any failure (a full disk) no partial file is left behind and the error is raised. The file
    has the mode any new file gets (0o666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # made here: the name is this write's
    try:
        write(str(name))
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to ``path`` whole (:func:`write_atomic`); ``sync``: on the disk (fsync) before the rename."""

    def fill(tmp: str) -> None:
        with open(tmp, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())

    write_atomic(path, fill)


def write_json(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write ``data`` as JSON (UTF-8) to ``path``, atomically (:func:`write_bytes`)."""
    write_bytes(path, json.dumps(data, ensure_ascii=False, indent=indent).encode("utf-8"))
