"""Backups of an index folder, consistent while it is served and written: ``xmodal backup`` (the writing and
checking of the backup folder; :mod:`xmodal.restore` puts one back).

A backup is a folder holding a copy of the index folder and ``manifest.json`` (the size and SHA-256 of every
file, the store's change sequence and item count). It is written in this order, which is what makes it
consistent without stopping writes:

1. the **derived state** (every sub-folder but ``media/``: the vector index checkpoint ``index/``, each
   extension's folder such as ``ltr/`` and ``genret/``), under shared locks on the index folder and on each
   sub-folder, so no checkpoint is swapped in half-way (:mod:`.files`); an SQLite file among them (the
   memory index) through SQLite's online backup. Each checkpoint records the store sequence it reflects;
2. the **store** (``store.sqlite``: items, vectors, settings, change log, feedback log) through SQLite's
   online backup API (:meth:`sqlite3.Connection.backup`) in one step: one read transaction, a snapshot
   that includes every write committed before it began; WAL mode lets writers go on meanwhile. Taken after
   the derived state, it holds at least every change the checkpoints reflect, so a restored index catches
   them up from the change log (:func:`xmodal.changes.replay`), never the other way round;
3. the **media files** the snapshot's items reference (content-addressed, written before their item is
   committed and never rewritten, so they are all there);
4. the manifest, last; the folder is written as ``<dest>.partial`` and renamed into place, so a backup
   folder that exists is complete, and a failed backup leaves nothing.

Transient files are left out: ``*.tmp``, ``*.old`` and ``*.part`` files and folders, a training run's
``genret.ckpt/`` resume state, SQLite's ``-wal``/``-shm``/``-journal`` files and the in-use lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import StorageError, ValidationError
from .files import folder_lock
from .inuse import LOCK_FILE
from .space import space_guard

FORMAT = "xmodal-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "store.sqlite"
MEDIA = "media"
SQLITE_HEADER = b"SQLite format 3\x00"
#: Names left out of a backup: transient files and folders, and SQLite's side files (see the module notes).
TRANSIENT = (".tmp", ".old", ".part", ".ckpt", "-wal", "-shm", "-journal")
CHUNK = 1 << 20
#: How long the snapshot waits for a lock held by a writer (WAL readers normally wait for none).
TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a backup: its path in the backup folder (``/``-separated), size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` records about a backup."""

    files: tuple[FileEntry, ...]
    store_seq: int  # the store's last change in the snapshot: a restore holds exactly the writes up to it
    items: int
    source: str
    created_at: float
    seconds: float = 0.0
    xmodal_version: str = __version__
    missing_media: tuple[str, ...] = field(default_factory=tuple)  # referenced, but absent from the source

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def summary(self) -> dict[str, Any]:
        """What a command or route reports: no file list."""
        return {
            "items": self.items,
            "store_seq": self.store_seq,
            "files": len(self.files),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "missing_media": list(self.missing_media),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [asdict(entry) for entry in self.files]
        data["missing_media"] = list(self.missing_media)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse a manifest; a ``ValueError``/``KeyError``/``TypeError`` when it is not one."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an xmodal backup manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('format_version')!r}, this xmodal reads {FORMAT_VERSION}")
        files = tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"])
        for entry in files:
            _check_relative(entry.path)
        return cls(
            files,
            int(data["store_seq"]),
            int(data["items"]),
            str(data["source"]),
            float(data["created_at"]),
            float(data.get("seconds", 0.0)),
            str(data.get("xmodal_version", "")),
            tuple(str(m) for m in data.get("missing_media", ())),
        )


def write_backup(index: Path, dest: Path) -> Manifest:
    """Back up the index folder ``index`` into the new folder ``dest`` (see the module notes); consistent
    while other threads and processes write to the index. ``dest`` must not exist."""
    start = time.perf_counter()
    index, dest = Path(index), Path(dest)
    check_destination(dest)
    if not (index / STORE).is_file():
        raise ValidationError("index", f"{index} is not an xmodal index (no {STORE})", "give the index folder")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a backup that failed before left it
    try:
        with space_guard(partial.parent):
            partial.mkdir(parents=True)
            files = _copy_derived(index, partial)
            seq, items, refs = _snapshot(index / STORE, partial / STORE)
            files.append(entry_of(partial, partial / STORE))
            media, missing = _copy_media(index, partial, refs)
            files += media
            manifest = Manifest(tuple(files), seq, items, str(index.resolve()), time.time(), missing_media=missing)
            manifest = seal(partial, dest, manifest, start)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def seal(partial: Path, dest: Path, manifest: Manifest, start: float) -> Manifest:
    """Finish a backup written into ``partial``: its manifest (with the time since ``start``) durably
    written, every file synced, then the folder renamed to ``dest`` in one step."""
    manifest = replace(manifest, seconds=time.perf_counter() - start)
    write_durably(partial / MANIFEST, json.dumps(manifest.to_dict(), indent=1).encode())
    sync_tree(partial)
    os.replace(partial, dest)
    sync_dir(dest.parent)
    return manifest


def check_destination(dest: Path) -> None:
    """A backup goes into a new folder: an existing path is refused with the fix."""
    if dest.exists() or dest.is_symlink():
        raise ValidationError(
            "destination",
            f"{dest} already exists; a backup never writes over a file or folder",
            "give a new path, say with the date in its name, or remove the old one first",
        )


def read_manifest(src: Path) -> Manifest:
    """The manifest of the backup folder ``src``, or a clear error saying what ``src`` is not."""
    path = Path(src) / MANIFEST
    if not Path(src).is_dir():
        raise ValidationError("backup", f"{src} is not a folder", "give the folder `xmodal backup` wrote")
    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValidationError(
            "backup",
            f"{src} has no {MANIFEST}: it is not a complete xmodal backup (a backup still being written, or "
            "interrupted, has none)",
            "give the folder a finished `xmodal backup` wrote",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"{path}: not a readable backup manifest ({exc}); the backup is damaged: restore from another backup"
        ) from exc


def verify(src: Path, manifest: Manifest) -> None:
    """Check every file of the backup ``src`` against ``manifest`` (size, then SHA-256)."""
    for entry in manifest.files:
        path = Path(src) / entry.path
        _check_size(src, entry, path)
        if _sha256(path) != entry.sha256:
            raise damaged(src, f"{entry.path} differs from the checksum the backup recorded")


def copy_verified(src: Path, manifest: Manifest, into: Path) -> None:
    """Copy the files of the backup ``src`` into the new folder ``into``, checking each against the manifest
    as it is copied (one read); a :class:`StorageError` naming the first file that differs."""
    for entry in manifest.files:
        source, target = Path(src) / entry.path, into / entry.path
        _check_size(src, entry, source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy_hashed(source, target) != entry.sha256:
            raise damaged(src, f"{entry.path} differs from the checksum the backup recorded")
    sync_tree(into)


def damaged(src: Path, problem: str) -> StorageError:
    """The error for a backup that is truncated or damaged: what differs and what to do."""
    return StorageError(
        f"backup {src} is damaged or incomplete: {problem}; nothing was restored (the index is as it was): "
        "restore from another backup, or copy this one again from where it is kept"
    )


# -- writing -------------------------------------------------------------------------------------------
def _copy_derived(index: Path, into: Path) -> list[FileEntry]:
    """Every derived sub-folder, copied under shared locks (no checkpoint swapped in meanwhile)."""
    entries: list[FileEntry] = []
    with folder_lock(index, shared=True):
        for folder in sorted(p for p in index.iterdir() if p.is_dir() and _kept(p.name) and p.name != MEDIA):
            with folder_lock(folder, shared=True):  # the ltr folder's own writers take this one
                for path in _files(folder):
                    target = into / path.relative_to(index)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if _is_sqlite(path):
                        _sqlite_copy(path, target)
                        entries.append(entry_of(into, target))
                    else:
                        size = path.stat().st_size
                        entries.append(FileEntry(_relative(into, target), size, copy_hashed(path, target)))
    return entries


def _files(folder: Path) -> Iterator[Path]:
    """The files under ``folder`` worth keeping, in a stable order."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _kept(d))
        for name in sorted(names):
            path = Path(root) / name
            if _kept(name) and path.is_file() and not path.is_symlink():
                yield path


def _kept(name: str) -> bool:
    return not name.endswith(TRANSIENT) and name != LOCK_FILE and ".part" not in name


def _snapshot(store: Path, target: Path) -> tuple[int, int, list[str]]:
    """Copy the store with SQLite's online backup (one step: one consistent snapshot); returns the snapshot's
    last change sequence, item count and the media references of its items."""
    with closing(sqlite3.connect(store, timeout=TIMEOUT)) as source:  # reads only (read-only would leave -shm)
        with closing(sqlite3.connect(target)) as copy:
            source.backup(copy, pages=-1)  # every page in one step: the snapshot of one read transaction
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file; the engine sets WAL on open
            return _describe(copy)


def _describe(db: sqlite3.Connection) -> tuple[int, int, list[str]]:
    try:
        seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
        items = int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        refs = [
            str(ref)
            for (media,) in db.execute("SELECT media FROM items WHERE media IS NOT NULL")
            for ref in json.loads(media).values()
            if isinstance(ref, str)
        ]
    except sqlite3.Error as exc:
        raise StorageError(f"the store is not a readable xmodal store ({exc}); check it with `xmodal check`") from exc
    return seq, items, refs


def _sqlite_copy(path: Path, target: Path) -> None:
    """A consistent copy of an SQLite file another connection may be writing (SQLite's online backup)."""
    with closing(sqlite3.connect(path, timeout=TIMEOUT)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy, pages=-1)


def _copy_media(index: Path, into: Path, refs: Sequence[str]) -> tuple[list[FileEntry], tuple[str, ...]]:
    """Copy the media files the snapshot references (each once); references with no file are returned."""
    entries, missing = [], []
    media = (index / MEDIA).resolve()
    for ref in sorted(set(refs)):
        source = (index / ref).resolve()
        if media not in source.parents:
            continue  # not a file this index keeps (a reference a media loader resolves elsewhere)
        if not source.is_file():
            missing.append(ref)
            continue
        target = into / ref
        target.parent.mkdir(parents=True, exist_ok=True)
        entries.append(FileEntry(_relative(into, target), source.stat().st_size, copy_hashed(source, target)))
    return entries, tuple(missing)


def entry_of(root: Path, path: Path) -> FileEntry:
    return FileEntry(_relative(root, path), path.stat().st_size, _sha256(path))


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# -- files -----------------------------------------------------------------------------------------------
def copy_hashed(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` (a new file), returning the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "xb") as writer:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_size(src: Path, entry: FileEntry, path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        raise damaged(src, f"{entry.path} is missing") from None
    if size != entry.size:
        raise damaged(src, f"{entry.path} has {size:,} bytes, the backup recorded {entry.size:,} (truncated?)")


def _check_relative(path: str) -> None:
    """A manifest path stays inside the backup (no absolute path, no ``..``)."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ValueError(f"file path {path!r} leaves the backup folder")


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def sync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (a backup must survive a crash once it is reported)."""
    for folder, _, names in os.walk(root):
        for name in names:
            fd = os.open(Path(folder) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_dir(Path(folder))


def sync_dir(folder: Path) -> None:
    """fsync a folder (its entries: a rename into it survives a crash), where the file system can."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the files themselves are synced
    finally:
        os.close(fd)


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
