"""Which vector set a vector checkpoint holds: ``index/EPOCH`` beside it, checked when the engine opens.

``xmodal reindex --switch`` gives the index a new vector epoch (meta ``vectors_epoch``) in the transaction that
swaps its vectors. A checkpoint records the epoch it was written under; one of another epoch (written
before a switch, or by a process still running the old encoder after it) holds the old vectors, so the
engine deletes it and rebuilds from the store. The marker is removed before a checkpoint is written and
written after it, so a checkpoint killed half-way is never trusted under a wrong epoch. An index never
switched has epoch None, and a checkpoint without a marker counts as that epoch.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..store.files import write_json

MARKER = "EPOCH"
log = logging.getLogger(__name__)


def read(folder: Path) -> object:
    """The epoch recorded beside the checkpoint in ``folder`` (None when there is no marker)."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def discard_other(folder: Path, epoch: object) -> bool:
    """Delete the checkpoint in ``folder`` when it was written under another epoch; returns whether it did."""
    if not folder.is_dir() or read(folder) == epoch:
        return False
    log.warning("%s: the vector checkpoint predates the encoder switch; rebuilding it from the store", folder)
    shutil.rmtree(folder, ignore_errors=True)
    return True


def before_write(folder: Path, epoch: object) -> None:
    """Before a checkpoint is written: drop a marker of another epoch."""
    if read(folder) != epoch:
        (folder / MARKER).unlink(missing_ok=True)


def after_write(folder: Path, epoch: object) -> None:
    """After a checkpoint is written: record its epoch (atomically), when it is not None."""
    if epoch is None or not folder.is_dir() or read(folder) == epoch:
        return
    write_json(folder / MARKER, epoch)
