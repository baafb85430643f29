"""Training pairs (query embedding → target item) for the generative index, gathered from an engine.

Sources, each counted in the training summary:

- ``views``: each single-part vector of an item made of several parts (an image+text item's text
  vector and image vector) as a query for the item (the item's ID comes from its primary vector,
  :func:`~xmodal.records.primary_kind`), as GENIUS pairs a caption with its image;
- ``self``: every item's own embedding, perturbed by isotropic noise (relative norm ``self_noise``)
  and renormalised, as a query for itself. This is the only pair a text-only or image-only item
  has; it teaches the decoder the embedding → ID map around the item (the "indexing" task of DSI,
  Tay et al., NeurIPS 2022), but not what real queries look like, so it is weak supervision;
- ``pseudo``: the catalog's own pseudo-queries (:mod:`xmodal.ltr.pseudo`: names, misspellings, fragments,
  descriptions without the name, paraphrases in the catalog's other words, attribute + word), each a query
  for the items that answer it. They are what real queries look like before any user has searched, so the
  decoder learns to map query kinds that are not the items' own text (issue 19, part 2); at most
  ``pseudo_items`` items (a seeded sample, stable as the catalog grows) give them. Off by default: on
  WordNet (10k items) default training did not reach the targets with them (docs/benchmarks.md,
  "Generative retrieval on pseudo-queries"), and they make training several times longer;
- ``feedback``: positive events of the feedback log (the impression's query text → the item acted on);
- ``judgments``: user judgments in the ``xmodal eval`` format (``{"text", "image", "relevant"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..encoders import normalize
from ..errors import XmodalError
from ..ingest.prepare import Rejection
from ..records import Item, Modality, Query, VectorKind, primary_kind, primary_vector
from .model import modality_code
from .train import TrainingSet

if TYPE_CHECKING:
    from ..extension import EngineView

FloatArray = npt.NDArray[np.float32]
PSEUDO_ITEMS = 20_000  # items whose pseudo-queries become training pairs (a seeded sample beyond that)


def collect(
    engine: EngineView,
    *,
    judgments: str | Path | None = None,
    feedback: bool = True,
    pseudo: bool = False,
    pseudo_items: int = PSEUDO_ITEMS,
    self_noise: float = 0.3,
    seed: int = 0,
) -> tuple[TrainingSet, int, list[Rejection]]:
    """The training set of an engine, the store sequence it reflects, and skipped judgment lines."""
    seq = engine.last_seq()
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    mods: list[int] = []
    targets: list[int] = []
    vecs: list[np.ndarray] = []
    queries: list[np.ndarray] = []
    real: list[bool] = []  # a real query (not a noisy self pair): may be augmented
    sources = {"views": 0, "self": 0, "pseudo": 0, "feedback": 0, "judgments": 0}
    position: dict[int, int] = {}
    items: list[Item] = []
    for stored in engine.iter_items():
        items.append(stored.item)
        vec = primary_vector(stored.vectors)
        if vec is None:
            continue
        pos = len(rows)
        position[stored.row] = pos
        rows.append(stored.row)
        vecs.append(vec)
        mods.append(modality_code(stored.item.modality))
        noise = normalize(rng.standard_normal(vec.shape[0], dtype=np.float32))
        queries.append(normalize(vec + self_noise * noise))
        targets.append(pos)
        real.append(False)
        sources["self"] += 1
        for kind in view_kinds(stored.item.modality, stored.vectors):
            queries.append(stored.vectors[kind])
            targets.append(pos)
            real.append(True)
            sources["views"] += 1
    skipped: list[Rejection] = []
    extra: list[tuple[np.ndarray, int, str]] = []
    if pseudo:
        extra += _pseudo_pairs(engine, items, position, pseudo_items, seed)
    if feedback:
        extra += _feedback_pairs(engine, position)
    if judgments is not None:
        pairs, skipped = _judgment_pairs(engine, Path(judgments), position)
        extra += pairs
    for vec, pos, source in extra:
        queries.append(vec)
        targets.append(pos)
        real.append(True)
        sources[source] += 1
    dim = engine.dim
    data = TrainingSet(
        np.asarray(rows, np.int64),
        np.asarray(vecs, np.float32).reshape(-1, dim),
        np.asarray(mods, np.int64),
        np.asarray(queries, np.float32).reshape(-1, dim),
        np.asarray(targets, np.int64),
        sources,
        np.asarray(real, bool),
    )
    return data, seq, skipped


def view_kinds(modality: Modality, vectors: Mapping[str, np.ndarray]) -> list[str]:
    """The vectors of an item that are views of it (queries for it): with several parts, each part's own
    vector other than the primary one (text first, then image, then the others by name)."""
    parts = modality.parts
    if len(parts) < 2:
        return []
    primary = primary_kind(vectors)
    order = {VectorKind.TEXT.value: 0, VectorKind.IMAGE.value: 1}
    return sorted((k for k in vectors if k in parts and k != primary), key=lambda k: (order.get(k, 2), k))


def _pseudo_pairs(
    engine: EngineView, items: list[Item], position: dict[int, int], most: int, seed: int
) -> list[tuple[np.ndarray, int, str]]:
    """(query vector, target, "pseudo") for the pseudo-queries of up to ``most`` items with text."""
    from ..ltr.pseudo import KINDS, CatalogWords, pseudo_queries
    from ..ltr.selftune import sample_items, word_neighbours

    if most <= 0:
        return []
    chosen = sample_items([i for i in items if i.text.strip()], most, seed)
    if not chosen:
        return []
    catalog = CatalogWords(items)
    similar = word_neighbours(engine, catalog.frequency, chosen)
    kinds = [kind for kind in KINDS if kind != "category"]  # a category's query names many items, not an ID
    queries = pseudo_queries(chosen, seed, kinds, catalog=catalog, similar=similar)
    out: list[tuple[np.ndarray, int, str]] = []
    for start in range(0, len(queries), 256):
        part = queries[start : start + 256]
        vectors = engine.encode_queries([Query(text=q.text) for q in part])
        for q, vec in zip(part, vectors, strict=True):
            for item_id in q.relevant:
                pos = position.get(engine.row_of(item_id))
                if pos is not None:
                    out.append((vec, pos, "pseudo"))
    return out


def _feedback_pairs(engine: EngineView, position: dict[int, int]) -> list[tuple[np.ndarray, int, str]]:
    """(query vector, target, "feedback") for every positive event whose item still exists."""
    log = engine.feedback_log
    if log.counts()["events"] == 0:
        return []
    texts = {imp.query_id: imp.query for imp in log.impressions()}
    out = []
    for event in log.events():
        text = texts.get(event.query_id)
        if event.reward <= 0 or not text or event.item_id not in engine:
            continue
        pos = position.get(engine.row_of(event.item_id))
        if pos is not None:
            out.append((engine.encode_query(Query(text=text)), pos, "feedback"))
    return out


def _judgment_pairs(
    engine: EngineView, path: Path, position: dict[int, int]
) -> tuple[list[tuple[np.ndarray, int, str]], list[Rejection]]:
    from ..eval.runner import read_queries

    out: list[tuple[np.ndarray, int, str]] = []
    skipped: list[Rejection] = []
    for entry in read_queries(path):
        if isinstance(entry, Rejection):
            skipped.append(entry)
            continue
        try:
            vec = engine.encode_query(Query(text=entry.text, image=entry.image), path.parent)
        except XmodalError as exc:
            skipped.append(Rejection(entry.where, str(exc)))
            continue
        for item_id in sorted(entry.relevant):
            pos = position.get(engine.row_of(item_id)) if item_id in engine else None
            if pos is not None:
                out.append((vec, pos, "judgments"))
    return out, skipped


def feedback_events(engine: EngineView) -> int:
    """How many feedback events the engine's log holds."""
    return int(engine.feedback_log.counts()["events"])
