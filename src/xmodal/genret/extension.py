"""The generative-retrieval extension: the GENIUS modes over the index's trained generative model.

Importing this module imports no PyTorch: the model (and torch) load when the extension opens on an
index that has a trained model, or when ``xmodal genret train`` installs one. An index without a model
opens at no cost; its generative modes answer with the error that says how to train one.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigError, MissingDependency
from ..extension import ModeResult
from ..records import Query
from ..store.sqlite import StoredItem
from .fixes import TRAIN_FIX
from .shared import MODEL_STATE, fetch

if TYPE_CHECKING:
    from ..extension import EngineView, ExtensionHost, Mode
    from .live import LiveGenret

MANIFEST = "manifest.json"
GENERATIVE_MODES = ("generative", "generative-rerank")


class GenretExtension:
    """Holds the engine's :class:`LiveGenret` (created when a model exists or is installed)."""

    name = "genret"
    MODES: ClassVar[Mapping[str, str]] = {
        "generative": "GENIUS: item IDs decoded from the query by the trained model",
        "generative-rerank": "GENIUS-R: decoded candidates re-ranked by embedding similarity",
    }

    def __init__(self) -> None:
        self._view: EngineView | None = None
        self._folder: Path | None = None
        self._live: LiveGenret | None = None
        self._opening = threading.Lock()

    def open(self, view: EngineView, folder: Path) -> int:
        self._view, self._folder = view, folder
        seq = view.last_seq()
        shared = view.feedback_log.shared_state
        if shared is not None:  # several servers: the newest model any of them trained
            fetch(shared, folder)
            shared.follow(MODEL_STATE, self._model_shared)
        if (folder / MANIFEST).exists():
            _ = self.live  # load the model now, caught up with the store, so no search waits for it
        return seq

    def _model_shared(self) -> None:
        """Another server trained a model: fetch it and use it here."""
        shared = self._view.feedback_log.shared_state if self._view is not None else None
        if shared is None or self._folder is None or not fetch(shared, self._folder):
            return
        with self._opening:
            live = self._live
        if live is not None:
            live.reload()
        else:
            _ = self.live

    @property
    def live(self) -> LiveGenret:
        """The generative index holder (loaded, and caught up with the store, on first use)."""
        with self._opening:
            if self._live is None:
                if self._view is None or self._folder is None:
                    raise ConfigError("the genret extension is not open")
                from .live import LiveGenret

                self._live = LiveGenret(self._view, self._folder)
            return self._live

    def search(self, query: Query, vector: np.ndarray | None, *, rerank: bool) -> ModeResult:
        """GENIUS (or GENIUS-R with ``rerank``) for one query."""
        if self._view is None or self._folder is None:
            raise ConfigError("the genret extension is not open")
        if self._live is None and not (self._folder / MANIFEST).exists():  # say so without importing torch
            if not _installed("torch"):
                raise MissingDependency("torch", "genret")  # the first thing to fix: training needs it too
            raise ConfigError(f"no generative model for this index; {TRAIN_FIX} first")
        from .mode import generative_search

        if vector is None:
            vector = self._view.encode_query(query)
        return generative_search(self._view, self.live, query, vector, rerank=rerank)

    def modes(self) -> Mapping[str, Mode]:
        return {
            "generative": lambda query, vector: self.search(query, vector, rerank=False),
            "generative-rerank": lambda query, vector: self.search(query, vector, rerank=True),
        }

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        if self._live is not None:
            self._live.on_put(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        if self._live is not None:
            self._live.on_delete(rows)

    def checkpoint(self) -> None:
        if self._live is not None:
            self._live.checkpoint()

    def close(self) -> None:
        self.checkpoint()


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (torch takes seconds to import)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def live_genret(engine: ExtensionHost) -> LiveGenret:
    """The generative index holder of an engine whose index enables the ``genret`` extension."""
    extension = engine.extension("genret")
    if not isinstance(extension, GenretExtension):
        raise ConfigError(f"the index's 'genret' extension is {type(extension).__name__}, not xmodal's")
    return extension.live


def note_evaluation(engine: ExtensionHost, mode: str, source: str, figures: dict[str, Any]) -> bool:
    """Keep the figures of an evaluation in a generative mode (``xmodal eval --mode generative…``) for
    ``xmodal genret status``; other modes, or an engine without a model, keep nothing. Returns whether kept."""
    if mode not in GENERATIVE_MODES:
        return False
    live = live_genret(engine)
    if live.model is None:
        return False
    kept = {name: value for name, value in figures.items() if name != "skipped"}
    if "skipped" in figures:
        kept["skipped_lines"] = len(figures["skipped"])
    live.record_evaluation({"kind": "xmodal eval", "mode": mode, "queries_file": source, **kept})
    return True
