"""Dense retrieval per vector kind: a thin wrapper over :meth:`Engine.search_vector`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Query

if TYPE_CHECKING:
    from ...extension import EngineView


class DenseStrategy:
    """Cosine top-k against one vector kind (``text``, ``image``, ``combined``...), filters applied before
    the cut. Its name is ``dense:<kind>`` (a name only: the registry's spec carries the kind)."""

    def __init__(self, engine: EngineView, kind: str) -> None:
        self.engine = engine
        self.kind = str(kind)
        self.name = f"dense:{self.kind}"

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        if vector is None:
            vector = self.engine.encode_query(query)
        hits = self.engine.search_vector(vector, k=depth, target=self.kind, filters=dict(query.filters))
        return Hits(hits.ids, hits.scores, (self.name,) * len(hits))
