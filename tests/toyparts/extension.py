"""A toy extension: it counts the live items it has heard of (derived state, checkpointed with the store
sequence it reflects, so the engine's generic change-log replay catches it up) and provides the mode
``toy-newest`` (the most recently added matching items first)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from xmodal.extension import EngineView, Mode, ModeResult
from xmodal.records import Hits, Query
from xmodal.store.sqlite import StoredItem

STATE = "state.json"


class ToyExtension:
    name = "toy"
    MODES: ClassVar[Mapping[str, str]] = {"toy-newest": "the most recently added matching items first (a toy)"}
    fail_next_put = False  # a test sets it to make the next on_put fail once

    def __init__(self) -> None:
        self.view: EngineView | None = None
        self.folder = Path()
        self.rows: set[int] = set()
        self.dirty = False
        self.checkpoints = 0

    def open(self, view: EngineView, folder: Path) -> int:
        self.view, self.folder = view, folder
        if (folder / STATE).exists():
            state = json.loads((folder / STATE).read_text())
            self.rows = set(state["rows"])
            return int(state["seq"])
        return 0

    def modes(self) -> Mapping[str, Mode]:
        return {"toy-newest": self.newest}

    def newest(self, query: Query, vector: np.ndarray) -> ModeResult:
        assert self.view is not None
        allowed = self.view.match_rows(query.filters)
        rows = sorted(self.rows if allowed is None else self.rows & set(allowed.tolist()), reverse=True)
        ids = [i for i in (self.view.find_id(r) for r in rows) if i is not None][: query.k]
        return ModeResult(Hits.of(ids, [1.0] * len(ids), "toy"), {"mode": "toy-newest", "known": len(self.rows)})

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        if ToyExtension.fail_next_put:
            ToyExtension.fail_next_put = False
            raise RuntimeError("toy failure")
        self.rows.update(s.row for s in stored)
        self.dirty = True

    def on_delete(self, rows: Sequence[int]) -> None:
        self.rows.difference_update(rows)
        self.dirty = True

    def checkpoint(self) -> None:
        if self.dirty and self.view is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            state = {"seq": self.view.last_seq(), "rows": sorted(self.rows)}
            (self.folder / STATE).write_text(json.dumps(state))
            self.dirty = False
            self.checkpoints += 1

    def close(self) -> None:
        self.checkpoint()


class SlowToyExtension(ToyExtension):
    """The toy extension, slow to hear of writes (a big batch's derived-index work, such as a trie or a
    ranker's features): ``on_put`` sets ``entered``, then waits for ``gate`` (at most ``hold`` seconds) or
    sleeps ``delay`` seconds when no gate is set."""

    name = "slowtoy"
    delay = 0.0
    hold = 20.0
    gate: threading.Event | None = None
    entered = threading.Event()

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        SlowToyExtension.entered.set()
        if SlowToyExtension.gate is not None:
            SlowToyExtension.gate.wait(SlowToyExtension.hold)
        else:
            time.sleep(SlowToyExtension.delay)
        super().on_put(stored)
