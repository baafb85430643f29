"""Full-precision vectors by slot, kept on disk as immutable ``.npy`` parts and read by memory-mapping.

A row is addressed by its *slot* (0, 1, 2... in append order; a slot is never reused). Rows appended since
the last save are held in memory (the *tail*); :meth:`VectorFile.save` writes them as a new part next to
hard links to the parts already on disk, and :meth:`VectorFile.attach` then maps the saved parts read-only
(``np.load(mmap_mode="r")``): the process keeps only the pages the OS has cached, which it may drop.

Parts are immutable and named by a random id, so a name always means the same rows: a checkpoint links the
parts of the previous one instead of copying them, and a part whose file another process has since
dropped is written again from the mapping this process still holds. A tail that grows past a limit is
*spilled* between checkpoints (:meth:`VectorFile.spill`): written as a part into the live checkpoint's folder
and mapped, so a long ingest does not hold its vectors in memory. When saving, the trailing parts that
are no larger than the rows after them are merged into the new part (so n rows make O(log n) parts), and a
part with no live row left is dropped (its slots are never read again).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import StorageError
from .base import Vectors

REBUILD = "delete the folder to rebuild it"


@dataclass(frozen=True, slots=True)
class Part:
    """One saved file: rows for slots ``start .. start + len(rows)``."""

    name: str
    start: int
    rows: npt.NDArray[np.float32]  # a read-only memory map (or, once its file is gone, the mapping kept)

    @property
    def stop(self) -> int:
        return self.start + len(self.rows)


class VectorFile:
    """Append-only float32 rows by slot: saved parts memory-mapped from disk plus an in-memory tail."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self._parts: list[Part] = []
        self._dir: Path | None = None  # where the parts' files are (None: never saved)
        self._tail = np.empty((0, self.dim), dtype=np.float32)
        self._tail_start = 0  # the slot of the tail's first row
        self._tail_n = 0
        self._pending: tuple[list[tuple[str, int, int]], int] | None = None  # written by save, mapped by attach
        self._starts = np.empty(0, dtype=np.int64)

    @property
    def next_slot(self) -> int:
        return self._tail_start + self._tail_n

    @property
    def unsaved(self) -> int:
        """Rows held in memory until the next save."""
        return self._tail_n

    @property
    def parts(self) -> int:
        return len(self._parts)

    def append(self, vectors: Vectors) -> npt.NDArray[np.int64]:
        """Append rows (float32 [n, dim]); returns their slots."""
        n = len(vectors)
        need = self._tail_n + n
        if need > len(self._tail):
            grown = np.empty((max(need, 2 * len(self._tail), 1024), self.dim), dtype=np.float32)
            grown[: self._tail_n] = self._tail[: self._tail_n]
            self._tail = grown
        self._tail[self._tail_n : need] = vectors
        slots = np.arange(self.next_slot, self.next_slot + n, dtype=np.int64)
        self._tail_n = need
        return slots

    def take(self, slots: npt.NDArray[np.int64]) -> Vectors:
        """The rows of ``slots`` (each a slot appended and not in a dropped part), in the order given."""
        out = np.empty((len(slots), self.dim), dtype=np.float32)
        if not len(slots):
            return out
        in_tail = slots >= self._tail_start
        if in_tail.any():
            out[in_tail] = self._tail[slots[in_tail] - self._tail_start]
        rest = np.flatnonzero(~in_tail)
        if len(rest):
            which = np.searchsorted(self._starts, slots[rest], side="right") - 1
            for p in np.unique(which).tolist():
                pick = rest[which == p]
                part = self._parts[p]
                local = slots[pick] - part.start
                order = np.argsort(local, kind="stable")  # ascending offsets: the pages are read in file order
                out[pick[order]] = part.rows[local[order]]
        return out

    def covers(self, slots: npt.NDArray[np.int64]) -> bool:
        """Whether every slot is held (in a part or in the tail)."""
        if not len(slots):
            return True
        if slots.min() < 0 or slots.max() >= self.next_slot:
            return False
        rest = slots[slots < self._tail_start]
        if not len(rest):
            return True
        which = np.searchsorted(self._starts, rest, side="right") - 1
        stops = np.array([p.stop for p in self._parts], dtype=np.int64)
        return bool((which >= 0).all() and (rest < stops[which]).all())

    # -- persistence ------------------------------------------------------------------------------------
    def spill(self, directory: Path) -> None:
        """Write the tail as a part into ``directory`` (the live checkpoint's folder, where :meth:`save`
        links parts from) and map it, so that rows not yet checkpointed stop filling memory. The file is
        not in that checkpoint's manifest: a checkpoint written by another process drops it, and the next
        save here writes it again from the mapping (as for any part whose file is gone)."""
        if not self._tail_n or (self._dir is not None and self._dir != directory):
            return
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.npy"
        np.save(directory / name, self._tail[: self._tail_n])
        self._parts.append(Part(name, self._tail_start, _map(directory / name, self._tail_n, self.dim)))
        self._dir = directory
        self._tail, self._tail_start, self._tail_n = np.empty((0, self.dim), np.float32), self.next_slot, 0
        self._starts = np.array([p.start for p in self._parts], dtype=np.int64)

    def save(self, directory: Path, live: npt.NDArray[np.int64]) -> dict[str, Any]:
        """Write the parts into ``directory`` (links to the existing ones, a new one for the tail and the
        merged trailing parts) and return their description for a manifest. ``live`` are the slots still in
        use: a part holding none is dropped. Nothing changes in memory until :meth:`attach`."""
        live = np.sort(np.asarray(live, dtype=np.int64))
        keep = [p for p in self._parts if np.searchsorted(live, p.stop) > np.searchsorted(live, p.start)]
        merged: list[Part] = []
        rows = self._tail_n
        while (
            keep and keep[-1].stop == (merged[0].start if merged else self._tail_start) and len(keep[-1].rows) <= rows
        ):
            merged.insert(0, keep.pop())
            rows += len(merged[0].rows)
        layout = [(p.name, p.start, len(p.rows)) for p in keep]
        for part in keep:
            self._link(part, directory)
        if rows:
            start = merged[0].start if merged else self._tail_start
            name = f"part-{uuid.uuid4().hex}.npy"
            out = np.lib.format.open_memmap(directory / name, mode="w+", dtype=np.float32, shape=(rows, self.dim))
            at = 0
            for part in merged:
                for lo in range(0, len(part.rows), 65536):
                    chunk = part.rows[lo : lo + 65536]
                    out[at : at + len(chunk)] = chunk
                    at += len(chunk)
            out[at:] = self._tail[: self._tail_n]
            out.flush()
            del out
            layout.append((name, start, rows))
        self._pending = (layout, self.next_slot)
        return {
            "dtype": "float32",
            "next_slot": self.next_slot,
            "parts": [{"file": name, "start": start, "rows": n} for name, start, n in layout],
        }

    def _link(self, part: Part, directory: Path) -> None:
        """Hard-link a part's file into ``directory``; write it from the mapping when it cannot be linked
        (its file dropped by another process's checkpoint, or on another file system)."""
        target = directory / part.name
        if self._dir is not None:
            try:
                os.link(self._dir / part.name, target)
                return
            except OSError:
                pass
        np.save(target, np.asarray(part.rows))

    def attach(self, directory: Path) -> None:
        """Map the parts the last :meth:`save` wrote into ``directory`` (now in place) and free the tail."""
        if self._pending is None:
            return
        layout, next_slot = self._pending
        self._pending = None
        self._parts = [Part(name, start, _map(directory / name, n, self.dim)) for name, start, n in layout]
        self._dir = directory
        self._tail, self._tail_start, self._tail_n = np.empty((0, self.dim), np.float32), next_slot, 0
        self._starts = np.array([p.start for p in self._parts], dtype=np.int64)

    @classmethod
    def load(cls, directory: Path, described: Any, dim: int) -> VectorFile:
        """Map the parts a manifest describes (``save``'s return value); a missing, short or foreign part
        is a :class:`StorageError`."""
        file = cls(dim)
        try:
            if described["dtype"] != "float32":
                raise ValueError(f"vectors of dtype {described['dtype']!r}")
            entries = [(str(e["file"]), int(e["start"]), int(e["rows"])) for e in described["parts"]]
            next_slot = int(described["next_slot"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(
                f"{directory}: the manifest does not describe the vector parts ({exc}); {REBUILD}"
            ) from exc
        stop = 0
        for name, start, rows in entries:
            if "/" in name or name.startswith(".") or start < stop or rows < 1:
                raise StorageError(f"{directory}: vector part {name!r} out of order; {REBUILD}")
            stop = start + rows
        if next_slot < stop:
            raise StorageError(f"{directory}: vector parts end after the next slot; {REBUILD}")
        file._parts = [Part(name, start, _map(directory / name, rows, dim)) for name, start, rows in entries]
        file._dir, file._tail_start = directory, next_slot
        file._starts = np.array([p.start for p in file._parts], dtype=np.int64)
        return file


def _map(path: Path, rows: int, dim: int) -> npt.NDArray[np.float32]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:  # missing, truncated (shorter than its header says) or not .npy
        raise StorageError(f"{path}: unreadable vector part ({exc}); {REBUILD}") from exc
    if array.dtype != np.float32 or array.shape != (rows, dim):
        raise StorageError(
            f"{path}: vector part is {array.dtype} {array.shape}, expected float32 {(rows, dim)}; {REBUILD}"
        )
    return array  # type: ignore[no-any-return]
