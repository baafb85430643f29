"""The progress record of a batched add that may be interrupted: which batches are committed, so that the
same add run again skips them and goes on from where it stopped.

One JSON line per committed batch (its number, a digest of its ids, the ids added and the rejections),
appended and fsynced after the batch's store commit, in ``<index>/ingest/<job>.jsonl``. The job is named by
a digest of the catalogs (path, size, modification time) and the options that change what a batch holds,
so a changed catalog starts afresh. A crash between a commit and its line makes the batch run again, which
is harmless: an add replaces items by id. A torn last line (a crash mid-append) is ignored. The record
is removed when the whole add has finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .prepare import AddReport, Rejection

FOLDER = "ingest"


def job_key(paths: Iterable[str | Path], options: Mapping[str, Any]) -> str:
    """A name for an add of these catalogs with these options (changes when a catalog does)."""
    described: list[Any] = []
    for path in paths:
        p = Path(path).resolve()
        try:
            stat = p.stat()
            described.append([str(p), stat.st_size, stat.st_mtime_ns])
        except OSError:
            described.append([str(p), None, None])
    text = json.dumps({"catalogs": described, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def batch_digest(ids: Sequence[str]) -> str:
    """What a batch holds, to know a recorded batch is still the same one."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DoneBatch:
    """A committed batch as recorded: its digest and the report of its items."""

    digest: str
    added: list[str]
    rejected: list[Rejection]


class Journal:
    """The committed batches of one add job, kept in ``<index>/ingest/<key>.jsonl``."""

    def __init__(self, index: Path, key: str) -> None:
        self.path = index / FOLDER / f"{key}.jsonl"

    def done(self) -> dict[int, DoneBatch]:
        """The batches recorded (a torn or unreadable line is skipped: its batch runs again)."""
        found: dict[int, DoneBatch] = {}
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return found
        for raw in lines:
            try:
                line = json.loads(raw)
                rejected = [Rejection(str(r["where"]), str(r["reason"])) for r in line["rejected"]]
                found[int(line["batch"])] = DoneBatch(str(line["digest"]), list(line["added"]), rejected)
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def record(self, batch: int, digest: str, report: AddReport) -> None:
        """Record batch ``batch`` as committed (appended and fsynced before returning)."""
        line = {
            "batch": batch,
            "digest": digest,
            "added": report.added,
            "rejected": [{"where": r.where, "reason": r.reason} for r in report.rejected],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def forget(self) -> None:
        """Drop the record: the add is complete (run again, it adds everything again), or starts afresh."""
        self.path.unlink(missing_ok=True)
