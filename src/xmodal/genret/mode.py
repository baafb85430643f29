"""The search modes ``generative`` (GENIUS) and ``generative-rerank`` (GENIUS-R).

Generation does not see the query's filters: the generated candidates are filtered afterwards, from
a deeper candidate pool, so a filtered query can return fewer than ``k`` hits when few generated
candidates match. Use dense search for selective filters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..extension import ModeResult
from ..records import Hits, Query, Target
from .model import RERANK_POOL
from .search import one_thread

if TYPE_CHECKING:
    from ..extension import EngineView
    from .live import LiveGenret
    from .model import GenerativeIndex

BEAM = 32
# GENIUS-R decodes the modality, the level-1 and the level-2 code (RERANK_DEPTH tokens) with RERANK_BEAM beams
# and re-ranks every item under those prefixes, at most RERANK_POOL. On the WordNet tuning kinds (10k items) R@10
# 0.68–0.92× dense with 16 beams of two tokens, 0.77–0.94× with 128 beams of three before them, 0.88–0.96× with
# this; decoding 9 ms a query once dead beams are pruned (docs/benchmarks.md, "GENIUS-R: 512 beams of three
# tokens"). Fewer generated prefixes than beams (a small catalog) give fewer candidates.
RERANK_BEAM = 512
RERANK_DEPTH = 3
FILTER_DEPTH = 10  # candidates per wanted hit when filters apply


def generative_search(
    engine: EngineView, live: LiveGenret, query: Query, vector: np.ndarray, *, rerank: bool
) -> ModeResult:
    """GENIUS: members of the generated buckets in beam order, scored by the beam's log-probability;
    GENIUS-R (``rerank``): the generated candidates re-ranked by cosine similarity with the item vectors."""
    allowed = engine.match_rows(query.filters)
    depth = query.k if allowed is None else query.k * FILTER_DEPTH
    beam = max(RERANK_BEAM if rerank else BEAM, query.k if allowed is None else 2 * query.k)
    kinds = None if query.target == Target.ANY else {query.target}  # None: every kind the item has

    with live.reading() as model, one_thread():  # one query: one torch thread (see one_thread)
        pool = max(depth, RERANK_POOL)  # every member of the generated buckets, up to the cap
        rows, scores = model.search(
            vector,
            depth if not rerank else pool,
            beam=beam,
            similarity=(lambda cands, v: rerank_similarity(engine, cands, v, kinds)) if rerank else None,
            pool=pool,
            depth=rerank_depth(model) if rerank else None,
        )[0]
        if allowed is not None:
            match = np.isin(rows, allowed)
            rows, scores = rows[match], scores[match]
        if rerank:  # re-ranking drops items without a vector of the target kind
            rows, scores = rows[np.isfinite(scores)], scores[np.isfinite(scores)]
        rows, scores = rows[: query.k], scores[: query.k]
        ids = [engine.find_id(int(r)) for r in rows]
    kept = [(i, float(s)) for i, s in zip(ids, scores.tolist(), strict=True) if i is not None]
    hits = Hits.of([i for i, _ in kept], [s for _, s in kept], "generative")
    return ModeResult(hits, {"mode": "generative-rerank" if rerank else "generative"})


def rerank_depth(model: GenerativeIndex) -> int:
    """The tokens GENIUS-R decodes: :data:`RERANK_DEPTH`, or the whole ID of a model of one level (two tokens)."""
    return min(RERANK_DEPTH, model.trie.length)


def rerank_similarity(engine: EngineView, rows: np.ndarray, q: np.ndarray, kinds: set[str] | None) -> np.ndarray:
    """GENIUS-R's score of each row: its best cosine with ``q`` over its vectors of ``kinds`` (None: every kind),
    -inf for a row with none. Read from the vector index (a 1,000-row pool: ~1.5 ms, against ~12 ms for the items
    from the store at 10k items), which gives 0 for a missing vector: only the rows whose best is exactly 0 are
    read from the store, to tell a missing vector from an orthogonal one."""
    names = [k for k in engine.vector_kinds() if (kinds is None or k in kinds) and engine.vector_count(k)]
    listed = rows.tolist()
    best = np.full(len(rows), -np.inf, np.float32)
    for kind in names:
        best = np.maximum(best, engine.similarity(q, listed, kind))
    unsure = np.flatnonzero(best == 0.0)
    if len(unsure):
        found = engine.items_of([listed[i] for i in unsure.tolist()], with_vectors=True)
        for i in unsure.tolist():
            vecs = found[listed[i]].vectors if listed[i] in found else {}
            sims = [float(v @ q) for kind, v in vecs.items() if kinds is None or kind in kinds]
            best[i] = max(sims) if sims else -np.inf
    return best
