"""Features of each (query, candidate) pair for the learned ranker.

Per strategy: reciprocal rank and raw score (0 when the strategy did not return the item); the
fused score and rank; BM25F of the query against the item; cosine between the query vector and the
item's vector of each kind; how many query-understanding slots the item's attributes satisfy;
the memory index's smoothed action rate; popularity (log of weighted events); freshness; and
whether the item's modality matches the query's.

The layout (:class:`FeatureLayout`) follows the pipeline's configured strategies and the vector kinds
its dense strategies search; a trained ranker keeps the feature names it was trained on, and
:func:`align` maps a matrix of one layout onto another by name (a feature the model never saw is
dropped, one the pipeline no longer has is 0), so a ranker trained under another strategy set loads.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..filters import Condition, value_key, values_at
from ..records import Modality, Query
from .fusion import FusedHit
from .strategies.structured import Understanding
from .text import stems

if TYPE_CHECKING:
    from ..extension import EngineView
    from .strategies import LexicalStrategy, MemoryStrategy


class FeatureSource(Protocol):
    """What the features read from the pipeline (a protocol, so this module does not import it)."""

    engine: EngineView
    lexical: LexicalStrategy
    memory: MemoryStrategy
    popularity: dict[str, float]
    layout: FeatureLayout

    def item_meta(self, rows: Sequence[int]) -> dict[int, tuple[float, str]]: ...


ITEM_FEATURES = ("qu_matches", "qu_share", "memory", "popularity", "freshness", "modality_match")
FRESHNESS_DAYS = 30.0


@dataclass(frozen=True, slots=True)
class FeatureLayout:
    """The ranker's columns for a pipeline: per arm (its configured strategies, in order) ``rr:`` and
    ``score:``, the fused score and rank, BM25F, ``cos:`` per vector kind, then the item features."""

    arms: tuple[str, ...]
    kinds: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self.arms, self.kinds)

    @property
    def columns(self) -> dict[str, int]:
        """Each name's column (shared: read it, never change it)."""
        return _columns(self.arms, self.kinds)


@functools.lru_cache(maxsize=64)  # every ranked search asks for them: built once per layout
def _names(arms: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[str, ...]:
    return (
        *(f"rr:{a}" for a in arms),
        *(f"score:{a}" for a in arms),
        "fused",
        "fused_rr",
        "bm25",
        *(f"cos:{k}" for k in kinds),
        *ITEM_FEATURES,
    )


@functools.lru_cache(maxsize=64)
def _columns(arms: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(_names(arms, kinds))}


def align(X: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """``X`` (columns ``names``) with the columns ``wanted`` instead, by name; a missing one is 0."""
    if tuple(names) == tuple(wanted):
        return X
    col = {name: i for i, name in enumerate(names)}
    out = np.zeros((X.shape[0], len(wanted)), dtype=X.dtype)
    for j, name in enumerate(wanted):
        if name in col:
            out[:, j] = X[:, col[name]]
    return out


def candidate_features(
    pipeline: FeatureSource,
    query: Query,
    vector: np.ndarray | None,
    fused: Sequence[FusedHit],
    understanding: Understanding,
    now: float | None = None,
) -> np.ndarray:
    """A float32 matrix [len(fused), len(layout.names)] in the order of the pipeline's :class:`FeatureLayout`."""
    engine = pipeline.engine
    layout = pipeline.layout
    names = layout.names
    out = np.zeros((len(fused), len(names)), dtype=np.float32)
    if not fused:
        return out
    n = len(fused)
    find_row = engine.find_row
    rows = [-1 if (row := find_row(h.id)) is None else row for h in fused]
    col = layout.columns
    arm_columns = _arm_columns(layout.arms, layout.kinds)
    at_row: list[int] = []
    at_col: list[int] = []
    values: list[float] = []
    for i, hit in enumerate(fused):
        for arm, (rank, score) in hit.sources.items():
            columns = arm_columns.get(arm)
            if columns is not None:
                at_row += (i, i)
                at_col += columns
                values += (1.0 / rank, score)
    if values:  # one scatter (each cell is written once: an arm appears once in a hit's sources)
        out[at_row, at_col] = values
    out[:, col["fused"]] = [hit.score for hit in fused]
    out[:, col["fused_rr"]] = [1.0 / (i + 1) for i in range(n)]
    out[:, col["bm25"]] = pipeline.lexical.index.score_rows(stems(query.text or ""), rows)
    if vector is not None:
        similarity: Callable[[np.ndarray, Sequence[int], Any], np.ndarray] = engine.similarity
        for kind in layout.kinds:  # kinds are plain strings (built-in ones equal their VectorKind)
            out[:, col[f"cos:{kind}"]] = similarity(vector, rows, kind)
    _attribute_features(pipeline, understanding, rows, out[:, col["qu_matches"]], out[:, col["qu_share"]])
    memory = pipeline.memory.lookup(query.text)
    popularity = pipeline.popularity
    meta = pipeline.item_meta(rows)
    moment = time.time() if now is None else now
    remembered, popular = [0.0] * n, [0.0] * n
    fresh, matching = [0.0] * n, [0.0] * n
    matches: dict[str, float] = {}  # per modality: it depends on the query and the modality only
    for i, (hit, row) in enumerate(zip(fused, rows, strict=True)):
        stats = memory.get(hit.id)
        if stats is not None:
            remembered[i] = stats.score()
        popular[i] = math.log1p(popularity.get(hit.id, 0.0))
        found = meta.get(row)
        if found is not None:
            fresh[i] = freshness(found[0], moment)
            modality = found[1]
            match = matches.get(modality)
            if match is None:
                match = matches[modality] = _modality_match(query, modality)
            matching[i] = match
    out[:, col["memory"]] = remembered
    out[:, col["popularity"]] = popular
    out[:, col["freshness"]] = fresh
    out[:, col["modality_match"]] = matching
    return out


@functools.lru_cache(maxsize=64)
def _arm_columns(arms: tuple[str, ...], kinds: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Each arm's (``rr:``, ``score:``) columns (shared: read it, never change it)."""
    col = _columns(arms, kinds)
    return {arm: (col[f"rr:{arm}"], col[f"score:{arm}"]) for arm in arms}


def freshness(created_at: float, now: float) -> float:
    """``exp(-age / 30 days)``: 1 for an item added now, 0.37 at 30 days."""
    return math.exp(-max(now - created_at, 0.0) / 86400 / FRESHNESS_DAYS)


def _attribute_features(
    pipeline: FeatureSource, understanding: Understanding, rows: Sequence[int], matches: np.ndarray, share: np.ndarray
) -> None:
    slots = understanding.slots
    if not slots:
        return
    wanted = {name: {value_key(v) for v in values} for name, values in slots.items()}
    for i, row in enumerate(rows):
        have = pipeline.engine.attributes_of(row)
        n = sum(1 for name, keys in wanted.items() if Condition(name, "in", tuple(keys)).holds(values_at(have, name)))
        matches[i] = n
        share[i] = n / len(slots)


def _modality_match(query: Query, modality: str) -> float:
    wants_image = query.image is not None
    wants_text = bool(query.text)
    has_image = modality in (Modality.IMAGE, Modality.IMAGE_TEXT)
    has_text = modality in (Modality.TEXT, Modality.IMAGE_TEXT)
    return float((not wants_image or has_image) and (not wants_text or has_text))
