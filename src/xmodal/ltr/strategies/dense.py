"""Dense retrieval per vector kind: a thin wrapper over :meth:`Engine.search_vector` (and, for a batch of
queries, :meth:`Engine.search_vectors`: one matrix search per group of requests with the same filters and
depth, each row's answer the one a single search gives; at most :func:`.base.matrix_rows` queries a search)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...records import Hits, Query
from .base import Request, matrix_rows

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

    def retrieve_many(self, requests: Sequence[Request]) -> list[Hits]:
        """:meth:`retrieve` for each request, in order; those with a vector that share filters and depth are
        answered by one matrix search."""
        out: list[Hits | None] = [None] * len(requests)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (query, depth, vector) in enumerate(requests):
            if vector is None:
                out[i] = self.retrieve(query, depth)
            else:
                groups.setdefault((json.dumps(query.filters, sort_keys=True, default=repr), depth), []).append(i)
        rows = matrix_rows(self.engine)  # a batch larger than this is searched in parts
        for (_, depth), group in groups.items():
            filters = dict(requests[group[0]][0].filters)
            for start in range(0, len(group), rows):
                positions = group[start : start + rows]
                matrix = np.stack([np.asarray(requests[i][2], dtype=np.float32).reshape(-1) for i in positions])
                found = self.engine.search_vectors(matrix, k=depth, target=self.kind, filters=filters)
                for i, hits in zip(positions, found, strict=True):
                    out[i] = Hits(hits.ids, hits.scores, (self.name,) * len(hits))
        return [hits if hits is not None else Hits.empty() for hits in out]
