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

if TYPE_CHECKING:
    from ..extension import EngineView
    from .live import LiveGenret

BEAM = 32
# GENIUS-R decodes only the modality and the level-1 code (RERANK_DEPTH tokens) with RERANK_BEAM beams and
# re-ranks every item under those prefixes, at most RERANK_POOL: on the WordNet tuning kinds this took R@10
# from 0.46–0.75× dense (64 full IDs, ~70 candidates) to 0.67–0.90×, no slower end to end (2 decoder
# steps instead of 4; docs/benchmarks.md, "GENIUS-R decoding depth"). Small level-1 cells give fewer.
RERANK_BEAM = 16
RERANK_DEPTH = 2
# ... and the members of RERANK_LEAD's deeper prefixes (128 beams, three tokens) come first in that pool, the
# level-1 cells' fill it up: on the WordNet tuning kinds R@10 0.68–0.93× dense → 0.78–0.95× (held out: synonym
# 0.81× → 0.89×), a GENIUS-R search 21 → 29 ms p50 at 10k items (docs/benchmarks.md, "GENIUS-R's decoding re-swept")
RERANK_LEAD = (128, 3)
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

    def similarity(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        found = engine.items_of(rows.tolist(), with_vectors=True)
        out = np.full(len(rows), -np.inf, np.float32)
        for i, row in enumerate(rows.tolist()):
            vecs = found[row].vectors if row in found else {}
            sims = [float(v @ q) for kind, v in vecs.items() if kinds is None or kind in kinds]
            out[i] = max(sims) if sims else -np.inf
        return out

    with live.reading() as model:
        pool = max(depth, RERANK_POOL)  # every member of the generated buckets, up to the cap
        rows, scores = model.search(
            vector,
            depth if not rerank else pool,
            beam=beam,
            similarity=similarity if rerank else None,
            pool=pool,
            depth=RERANK_DEPTH if rerank else None,
            lead=RERANK_LEAD if rerank else None,
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
