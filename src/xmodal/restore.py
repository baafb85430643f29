"""Putting a backup back (``xmodal restore``): verified, checked, then swapped in whole.

:func:`restore` never writes into the index folder it replaces until the very end:

1. it reads the backup's manifest (:mod:`xmodal.store.backup`) and, when the index folder exists, takes
   its in-use lock exclusively (:mod:`xmodal.store.inuse`): an index a server or command has open is
   refused, and no one opens it while the restore runs;
2. it copies the backup into a sibling temporary folder, checking every file's size and SHA-256 as it goes
   (a truncated or damaged backup is refused here);
3. it opens the copy as an index, which catches the derived state (vector checkpoint, extensions) up with
   the store's change log, runs the consistency check (:func:`xmodal.check.repair`: derived data that
   differs is rebuilt from the store) and checks that the store holds exactly the backed-up change
   sequence and item count; closing it checkpoints the caught-up state;
4. only then it swaps the copy in place of the index folder (two renames in the same parent folder) and
   deletes the old one.

Any failure before the swap deletes the temporary folder and leaves the existing index as it was.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .check import repair
from .engine import Engine
from .errors import StorageError, ValidationError
from .store.backup import STORE, Manifest, copy_verified, read_manifest, sync_dir
from .store.inuse import LOCK_FILE, take_exclusive


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :func:`restore` did."""

    index: str
    backup: str
    items: int
    store_seq: int
    files: int
    bytes: int
    replaced: bool  # an existing index was replaced
    repaired: tuple[str, ...]  # derived data rebuilt from the store by the check (normally none)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def restore(backup: str | Path, index: str | Path, *, replace: bool = False) -> RestoreReport:
    """Restore the backup folder ``backup`` into the index folder ``index`` (see the module notes). An
    existing index is replaced only with ``replace``; one open in any process is never replaced."""
    start = time.perf_counter()
    src, target = Path(backup), Path(index)
    manifest = read_manifest(src)
    existing = _existing(target, replace=replace)
    use = take_exclusive(target) if existing else None
    tmp = target.with_name(f".{target.name}.restore-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        copy_verified(src, manifest, tmp)
        repaired = _check(tmp, manifest)
        _swap(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if use is not None:
            use.release()
    return RestoreReport(
        str(target),
        str(src),
        manifest.items,
        manifest.store_seq,
        len(manifest.files),
        manifest.bytes,
        existing,
        repaired,
        time.perf_counter() - start,
    )


def _existing(target: Path, *, replace: bool) -> bool:
    """Whether ``target`` holds an index to replace; refuses what must not be replaced."""
    if target.exists() and not target.is_dir():
        raise ValidationError("index", f"{target} is a file, not an index folder", "give a folder path")
    if not target.exists() or not [p for p in target.iterdir() if p.name != LOCK_FILE]:
        return False  # nothing there (an empty folder is filled)
    if not (target / STORE).is_file():
        raise ValidationError(
            "index",
            f"{target} is a folder that holds something else than an xmodal index",
            "restore into a new or empty folder",
        )
    if not replace:
        raise ValidationError(
            "index",
            f"{target} already holds an index",
            "pass --replace to replace it with the backup (Python: replace=True), or restore into a new folder; "
            "with --replace the current index is deleted only once the backup is restored and checked",
        )
    return True


def _check(folder: Path, manifest: Manifest) -> tuple[str, ...]:
    """Open the restored copy (catching its derived state up), check it and close it (a checkpoint)."""
    with Engine.open(folder) as engine:
        report = repair(engine)
        seq, items = engine.store.last_seq(), engine.store.count()
    if not report.ok:
        problems = "; ".join(report.problems())
        raise StorageError(
            f"the restored copy of the backup fails the consistency check ({problems}); nothing was restored "
            "(the index is as it was): restore from another backup"
        )
    if (seq, items) != (manifest.store_seq, manifest.items):
        raise StorageError(
            f"the restored store ends at change {seq} with {items} items, the backup recorded change "
            f"{manifest.store_seq} with {manifest.items}; nothing was restored: restore from another backup"
        )
    return tuple(report.repaired)


def _swap(tmp: Path, target: Path) -> None:
    """Put ``tmp`` in the place of ``target`` (renames in one folder); a failed rename puts the old one back."""
    if not target.exists():
        os.replace(tmp, target)
        sync_dir(target.parent)
        return
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    sync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["RestoreReport", "restore"]
