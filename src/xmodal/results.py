"""What a search returns: hits aligned with their items, timings, and the optional log id and explanation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import Hits, Item, primary_vector
from .view import result_view


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits with their items (aligned), and timings: ``encode_ms`` is part of ``took_ms``."""

    hits: Hits
    items: tuple[Item, ...]
    took_ms: float
    encode_ms: float
    query_id: str | None = None  # set when searched with log=True; pass it to Engine.feedback
    explain: dict[str, Any] | None = None  # set when searched with explain=True
    #: With ``with_vectors=True``: each hit's vector (:func:`hit_vector`), aligned with the hits (None for a
    #: hit without vectors).
    vectors: tuple[np.ndarray | None, ...] | None = None
    #: The cursor of the next page (pass it back with the same query), None when this page was the last.
    next_cursor: str | None = None
    #: The query's text, when it had one: each segment hit's view gets a ``snippet`` of its text for it.
    query_text: str | None = None
    #: What the guards found in the flagged hits' text, by item id (each a list of findings); None: none.
    flags: Mapping[str, list[dict[str, str]]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON data, in the one view the CLI, REST and MCP share (:mod:`xmodal.view`)."""
        return result_view(self)


def hit_vector(vectors: Mapping[str, np.ndarray], provenance: str, target: str) -> np.ndarray | None:
    """The vector that stands for a hit: that of the kind searched (a ``target`` of one kind), else that of
    the kind the hit was found by (its provenance, ``dense:image``), else the item's primary vector."""
    for kind in (target, provenance.rpartition(":")[2]):
        if kind in vectors:
            return vectors[kind]
    return primary_vector(vectors)
