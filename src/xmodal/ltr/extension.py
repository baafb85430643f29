"""The learning-to-rank-and-retrieve extension: the learned pipeline and its search modes.

Modes: ``learned`` (the bandit's plan, fused, ranked), ``uniform`` (every strategy with an equal share,
the naive baseline), one per single strategy, and the peers' standard hybrids ``rrf`` and ``rsf``
(:mod:`.anchors`). Its derived state lives in ``<index>/ltr/``: the
policy, the ranker, and the memory index's priors and feedback statistics (``memory.sqlite``, read one
query at a time, so opening costs the same at any catalog size). ``checkpoint`` writes only what changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import ConfigError
from ..extension import ModeResult
from ..records import Query
from ..store.sqlite import StoredItem
from . import anchors, autotune
from .autotune import AutoTuner
from .pipeline import LTRConfig, Pipeline

if TYPE_CHECKING:
    from ..extension import EngineView, ExtensionHost, Mode

SINGLE = ("lexical", "structured", "memory", "explore")


class LTRExtension:
    """Opens one :class:`Pipeline` over the engine and forwards the catalog's changes to it."""

    name = "ltr"
    MODES: ClassVar[Mapping[str, str]] = {
        "learned": "the bandit's plan of strategies, fused, then the trained ranker",
        "uniform": "every strategy with an equal share, fused (the naive baseline)",
        "lexical": "BM25F full text alone (title weighted above body)",
        "structured": "attribute constraints understood from the query, alone",
        "memory": "items users acted on for this query before, alone",
        "explore": "the least-shown matching items first (exploration), alone",
        **anchors.ANCHORS,
    }

    def __init__(self, config: LTRConfig | None = None) -> None:
        self.config = config
        self._pipeline: Pipeline | None = None
        self.autotuner: AutoTuner | None = None

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise ConfigError("the ltr extension is not open")
        return self._pipeline

    def open(self, view: EngineView, folder: Path) -> int:
        seq = view.last_seq()  # the pipeline is built from the catalog as it is now
        self._pipeline = Pipeline(view, self.config, feedback=view.feedback_log, folder=folder)
        wanted = self._pipeline.config.autotune
        enabled = autotune.configured(self._pipeline.dir) if wanted is None else wanted
        self.autotuner = AutoTuner(self._pipeline, enabled=enabled)
        self._pipeline.on_grow.append(self.autotuner.written)
        return seq

    def modes(self) -> Mapping[str, Mode]:
        pipe = self.pipeline

        def uniform(query: Query, vector: np.ndarray) -> ModeResult:
            return ModeResult(*pipe.uniform(query, vector))

        def single(name: str) -> Mode:
            return lambda query, vector: ModeResult(*pipe.single(name, query, vector))

        def anchor(name: str) -> Mode:
            return lambda query, vector: ModeResult(*anchors.search(pipe, name, query, vector))

        return {
            "learned": Learned(pipe),
            "uniform": uniform,
            **{name: single(name) for name in SINGLE},
            **{name: anchor(name) for name in anchors.ANCHORS},
        }

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        self.pipeline.on_put(stored)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.pipeline.on_delete(rows)

    def checkpoint(self) -> None:
        self.pipeline.save()
        self.pipeline.memory.checkpoint()

    def stop(self) -> None:
        if self.autotuner is not None:
            self.autotuner.close()  # a fit in progress stops between two queries

    def close(self) -> None:
        self.stop()
        if self._pipeline is not None:
            try:
                self.checkpoint()
            finally:
                self._pipeline.close()


class Learned:
    """The ``learned`` mode: :meth:`Pipeline.search`, and :meth:`Pipeline.search_many` for a batch."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe

    def __call__(self, query: Query, vector: np.ndarray) -> ModeResult:
        return ModeResult(*self.pipe.search(query, vector))

    def many(self, queries: Sequence[Query], vectors: np.ndarray) -> list[ModeResult]:
        return [ModeResult(*found) for found in self.pipe.search_many(queries, list(vectors))]


def pipeline(engine: ExtensionHost) -> Pipeline:
    """The learned pipeline of an engine whose index enables the ``ltr`` extension."""
    extension = engine.extension("ltr")
    if not isinstance(extension, LTRExtension):
        raise ConfigError(f"the index's 'ltr' extension is {type(extension).__name__}, not the learned pipeline")
    return extension.pipeline


def autotuner(engine: ExtensionHost) -> AutoTuner | None:
    """The self-tuning of an engine's learned pipeline (:mod:`.autotune`), None when its index has none open."""
    try:
        extension = engine.extension("ltr")
    except ConfigError:  # not enabled for this index
        return None
    return extension.autotuner if isinstance(extension, LTRExtension) else None


def tune_if_due(engine: ExtensionHost) -> bool:
    """Start the background self-tuning of an engine's default mode now if one is due
    (:meth:`.autotune.AutoTuner.consider`); whether one started. A server calls it as it starts: an index built
    before self-tuning, or whose last fit a stop cut short, is tuned then rather than at its next write (opening
    an index starts no fit, so that a one-off command does not start one it would stop)."""
    tuner = autotuner(engine)
    return tuner.consider() if tuner is not None else False


@contextmanager
def deferred_tuning(engine: ExtensionHost) -> Iterator[AutoTuner | None]:
    """Hold the engine's self-tuning for a bulk load (:meth:`.autotune.AutoTuner.held`): one fit, on the whole
    catalog, starts when it ends (if one is due), not one on its first thousand items."""
    tuner = autotuner(engine)
    if tuner is None:
        yield None
        return
    with tuner.held():
        yield tuner
