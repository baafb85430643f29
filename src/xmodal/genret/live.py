"""The generative index of one engine: loaded once per engine, kept in step with the catalog.

:class:`LiveGenret` follows the catalog's changes (the genret extension forwards them): an added item
gets its ID from the trained quantizer and enters the trie at once (no retraining), a deleted item leaves
it. The trie is saved with the store sequence it reflects at a checkpoint when it changed (the engine's
applied sequence, never the store's newest: another process's writes this engine has not applied are
not in it), and caught up from the store's change log (:func:`xmodal.changes.replay`) when it is loaded.
Problems with the model (none trained, another encoder or dimension, a corrupt file) are kept and raised
only by the generative modes, so other modes never break.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..changes import replay
from ..errors import ConfigError, ValidationError, XmodalError
from ..records import primary_vector
from ..store.files import folder_lock, read_lock
from ..store.sqlite import StoredItem
from .data import feedback_events
from .fixes import TRAIN_FIX
from .model import GenerativeIndex, modality_code
from .shared import share

if TYPE_CHECKING:
    from ..extension import EngineView


class LiveGenret:
    """An engine's generative index (or the reason it has none) and its change listener."""

    def __init__(self, engine: EngineView, directory: Path) -> None:
        self.engine = engine
        self.directory = directory
        self.model: GenerativeIndex | None = None
        self.problem: XmodalError | None = None
        self._lock = threading.RLock()
        self._dirty = False
        self._failed = False  # a change failed to apply: the trie is saved no more (the next open catches up)
        self.reload()

    def reload(self) -> None:
        """(Re)load the saved model, if any, and catch its trie up with the store."""
        with self._lock:
            self.model, self.problem = None, None
            try:
                with read_lock(self.directory):  # never a model half swapped by another process
                    model, seq = GenerativeIndex.load(
                        self.directory, dim=self.engine.dim, encoder=self.engine.encoder_config
                    )
            except XmodalError as exc:
                self.problem = exc
                return
            self.model = model
            self._catch_up(seq)

    def install(self, model: GenerativeIndex, seq: int) -> None:
        """Use a freshly trained model whose trie reflects store sequence ``seq``, and save it."""
        with self._lock:
            self.model, self.problem = model, None
            model.save(self.directory, self._catch_up(seq))
            self._dirty = False
            shared = self.engine.feedback_log.shared_state
            if shared is not None:  # several servers over one store: every one of them uses it
                share(shared, self.directory)

    @contextmanager
    def reading(self) -> Iterator[GenerativeIndex]:
        """The model, locked against concurrent catalog updates; a clear error when it cannot serve."""
        with self._lock:
            if self.model is None:
                raise self.problem or ConfigError(f"no generative model for this index; {TRAIN_FIX} first")
            if len(self.model.trie) == 0:
                raise ValidationError("catalog", "is empty: no item has a semantic ID", f"add items, then {TRAIN_FIX}")
            yield self.model

    # -- the engine's change listener -------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem]) -> None:
        with self._lock, self._applying():
            if self.model is not None:
                self._put(self.model, stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        with self._lock, self._applying():
            if self.model is not None and self.model.remove(np.asarray(rows, np.int64)):
                self._dirty = True

    @contextmanager
    def _applying(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._failed = True  # the trie no longer reflects a known sequence
            raise

    def _put(self, model: GenerativeIndex, stored: Sequence[StoredItem]) -> None:
        keep: list[tuple[StoredItem, np.ndarray]] = []
        for s in stored:
            vec = primary_vector(s.vectors)
            if vec is not None:
                keep.append((s, vec))
        if not keep:
            return
        rows = np.asarray([s.row for s, _ in keep], np.int64)
        vectors = np.stack([v for _, v in keep]).astype(np.float32)
        model.put(rows, vectors, np.asarray([modality_code(s.item.modality) for s, _ in keep], np.int64))
        self._dirty = True

    def _catch_up(self, seq: int) -> int:
        """Apply the store's changes after ``seq`` to the trie; returns the sequence it now reflects."""
        reflects = replay(self.engine, seq, self)
        if reflects != seq:
            self._dirty = True
        return reflects

    def checkpoint(self) -> None:
        """Save the trie when the catalog changed since it was last written."""
        with self._lock:
            if self.model is not None and self._dirty and not self._failed and self.directory.exists():
                with folder_lock(self.directory.parent):  # one writer at a time (xmodal.store.files)
                    self.model.save_trie(self.directory, self.engine.applied_seq())
                self._dirty = False

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """How stale the model is: changes and feedback since training, live trie, last evaluation."""
        with self._lock:
            if self.model is None:
                return {"trained": False, "problem": str(self.problem) if self.problem else None, "fix": TRAIN_FIX}
            meta = self.model.meta
            changes = dict(self.engine.changes_since(int(meta.get("store_seq", 0))))
            trie = self.model.trie.stats()
            return {
                "trained": True,
                "trained_at": meta.get("trained_at"),
                "age_hours": round((time.time() - float(meta.get("trained_at", time.time()))) / 3600, 3),
                "encoder": meta.get("encoder"),
                "dim": meta["dim"],
                "levels": meta["levels"],
                "codebook_size": meta["codebook_size"],
                "training": meta.get("training", {}),
                "items_changed_since_training": sum(op == "put" for op in changes.values()),
                "items_deleted_since_training": sum(op == "delete" for op in changes.values()),
                "feedback_events_since_training": max(
                    0,
                    feedback_events(self.engine) - int(meta.get("feedback_events", 0)),
                ),
                "live": {
                    "items": trie.items,
                    "buckets": trie.buckets,
                    "collisions": trie.collisions,
                    "max_bucket": trie.max_bucket,
                    "trie_bytes": trie.nbytes,
                },
                "last_evaluation": meta.get("last_evaluation"),
            }

    def record_evaluation(self, evaluation: dict[str, Any]) -> None:
        """Keep an evaluation's figures in the manifest (shown by ``xmodal genret status``)."""
        with self._lock:
            if self.model is None:
                return
            self.model.meta["last_evaluation"] = {**evaluation, "at": time.time()}
            if self.directory.exists():
                self.model.save_manifest(self.directory)
