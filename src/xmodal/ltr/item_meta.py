"""Each row's creation time and modality, for the ranker's freshness and modality features.

A ranked search needs them for its ~50 candidates. Read from the store per candidate they cost a
SQLite round trip per search (most candidates of a random query are rows the process has not seen);
read for every row when the index opens, they would cost a full scan (≈ 1 s at 1M items) that a
one-shot CLI search never needs. So the rows are read on demand, and the first ranked search starts a
background pass that reads every row in chunks into two arrays (≈ 9 bytes a row); once it is done,
no search reads them from the store again. Puts and deletes keep both in step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..extension import EngineView

#: rows read per store call by the background pass (short, so searches interleave and close stops it soon)
CHUNK = 1000
_UNKNOWN = -1
log = logging.getLogger(__name__)


class ItemMeta:
    """(creation time, modality) by row: arrays filled by a background pass, rows read on demand until then."""

    def __init__(self, view: EngineView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._created = np.zeros(0, dtype=np.float64)
        self._code = np.full(0, _UNKNOWN, dtype=np.int32)  # index into _modalities
        self._modalities: list[str] = []
        self._codes: dict[str, int] = {}
        self._complete = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reads ------------------------------------------------------------------------------------
    def get(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]:
        """(creation time, modality) of each live row asked for (negative rows and deleted ones absent)."""
        with self._lock:
            found, missing = self._known(rows)
            complete = self._complete
        if missing and not complete:
            read = self._view.item_meta(missing)
            with self._lock:
                self._fill(read, overwrite=False)
            found.update(read)
        if self._thread is None and not complete:
            self._start()
        return found

    def _known(self, rows: Sequence[int]) -> tuple[dict[int, tuple[float, str]], list[int]]:
        found: dict[int, tuple[float, str]] = {}
        size = len(self._code)
        inside = [row for row in rows if 0 <= row < size]
        missing = [row for row in rows if row >= size]
        if inside:  # one gather per array (an element read from NumPy one at a time costs more than the search)
            at = np.fromiter(inside, dtype=np.int64, count=len(inside))
            modalities = self._modalities
            for row, code, created in zip(inside, self._code[at].tolist(), self._created[at].tolist(), strict=True):
                if code == _UNKNOWN:
                    missing.append(row)
                else:
                    found[row] = (created, modalities[code])
        return found, missing

    # -- keeping in step --------------------------------------------------------------------------
    def put(self, values: dict[int, tuple[float, str]]) -> None:
        """Rows written (their new values win over anything the background pass reads)."""
        with self._lock:
            self._fill(values, overwrite=True)

    def delete(self, rows: Sequence[int]) -> None:
        with self._lock:
            for row in rows:
                if 0 <= row < len(self._code):
                    self._code[row] = _UNKNOWN

    def _fill(self, values: dict[int, tuple[float, str]], *, overwrite: bool) -> None:
        """Store values (lock held); without ``overwrite`` a row already known keeps its value, so a
        background read never undoes a newer put."""
        if not values:
            return
        top = max(values) + 1
        if top > len(self._code):
            size = max(top, 2 * len(self._code))
            self._created = np.concatenate([self._created, np.zeros(size - len(self._created))])
            self._code = np.concatenate([self._code, np.full(size - len(self._code), _UNKNOWN, dtype=np.int32)])
        for row, (created_at, modality) in values.items():
            if overwrite or self._code[row] == _UNKNOWN:
                code = self._codes.get(modality)
                if code is None:
                    code = self._codes[modality] = len(self._modalities)
                    self._modalities.append(modality)
                self._created[row], self._code[row] = created_at, code

    # -- the background pass ----------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._load_all, name="xmodal-item-meta", daemon=True)
        self._thread.start()

    def _load_all(self) -> None:
        try:
            rows = self._view.all_rows().tolist()
            for start in range(0, len(rows), CHUNK):
                if self._stop.is_set():
                    return
                read = self._view.item_meta(rows[start : start + CHUNK])
                with self._lock:
                    self._fill(read, overwrite=False)
        except Exception as exc:  # noqa: BLE001 - a warm-up that fails leaves the rows read on demand
            log.warning("reading every item's metadata in the background failed (%s): read per search", exc)
            return
        with self._lock:
            self._complete = True

    def close(self) -> None:
        """Stop the background pass (it finishes the chunk it is reading)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join()
