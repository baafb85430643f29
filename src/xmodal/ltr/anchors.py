"""The peers' standard hybrid searches as modes: the anchors the learned fusion is measured against.

Both fuse a dense run and a lexical (BM25F) run of the same query, each retrieved at depth
``max(k, WINDOW)`` with the query's filters (100, the rank window OpenSearch and Elasticsearch use by
default):

- ``rrf``: reciprocal rank fusion, ``Σ 1 / (60 + rank)`` (G. V. Cormack, C. L. A. Clarke and
  S. Büttcher, SIGIR 2009; k = 60 is their constant and the default of Elasticsearch, OpenSearch and
  MongoDB's ``$rankFusion``).
- ``rsf``: relative score fusion, Weaviate's default hybrid search (since 1.24): each run's scores
  min-max normalised to [0, 1], then ``α · dense + (1 − α) · lexical`` with α = 0.75, Weaviate's default;
  an item missing from a run gets nothing from it.

Scores: RRF's sum (at most 2/61), or RSF's fused score in [0, 1]; ``explain`` keeps each run's rank and
raw score. The fusions are :mod:`.fusion`'s; nothing is learned here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import Hits, Query
from .fusion import RRF_K, FusedHit, convex, rrf, to_hits

if TYPE_CHECKING:
    from .pipeline import Pipeline

WINDOW = 100
RSF_ALPHA = 0.75
ANCHORS = {
    "rrf": f"reciprocal rank fusion of dense and lexical, k={RRF_K:g} (the peers' standard hybrid)",
    "rsf": f"relative score fusion of dense and lexical, alpha={RSF_ALPHA:g} (Weaviate's default hybrid)",
}


def runs(pipe: Pipeline, query: Query, vector: np.ndarray | None) -> dict[str, Hits]:
    """The dense and lexical runs of ``query``, each ``max(k, WINDOW)`` deep (lexical: none without text)."""
    depth = max(query.k, WINDOW)
    engine = pipe.engine
    if vector is None:
        vector = engine.encode_query(query)
    dense = engine.search_vector(vector, k=depth, target=query.target, filters=dict(query.filters))
    lexical = pipe.lexical.retrieve(query, depth, vector=vector) if query.text else Hits.empty()
    return {"dense": dense, "lexical": lexical}


def fuse(name: str, runs: dict[str, Hits]) -> list[FusedHit]:
    """``rrf`` or ``rsf`` of the ``dense`` and ``lexical`` runs."""
    if name == "rrf":
        return rrf(runs, k=RRF_K)
    return convex(runs, {"dense": RSF_ALPHA, "lexical": 1.0 - RSF_ALPHA}, "minmax")


def search(pipe: Pipeline, name: str, query: Query, vector: np.ndarray | None) -> tuple[Hits, dict[str, Any]]:
    """The anchor mode ``name`` for one query: its hits and their explanation."""
    found = runs(pipe, query, vector)
    fused = fuse(name, found)
    method = {"method": "rrf", "k": RRF_K} if name == "rrf" else {"method": "relative-score", "alpha": RSF_ALPHA}
    return to_hits(fused, query.k), {
        "mode": name,
        "fusion": {**method, "window": max(query.k, WINDOW)},
        "strategies": {run: len(hits) for run, hits in found.items()},
        "hits": [
            {"id": h.id, "sources": {s: {"rank": r, "score": round(v, 6)} for s, (r, v) in h.sources.items()}}
            for h in fused[: query.k]
        ],
    }
