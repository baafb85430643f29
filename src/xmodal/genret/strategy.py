"""Generative retrieval as a candidate generator for the learning-to-rank-and-retrieve pipeline."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..records import Hits, Query

if TYPE_CHECKING:
    from .extension import GenretExtension


class GenerativeStrategy:
    """``retrieve(query, depth)`` by GENIUS (or GENIUS-R with ``rerank``); provenance ``generative``.

    Raises the same clear errors as the search modes when no model is trained, so a caller (the
    bandit) can skip the strategy until ``xmodal genret train`` has run.
    """

    name = "generative"

    def __init__(self, extension: GenretExtension, *, rerank: bool = True) -> None:
        self.extension = extension
        self.rerank = rerank

    def retrieve(self, query: Query, depth: int, *, vector: np.ndarray | None = None) -> Hits:
        deep = dataclasses.replace(query, k=max(1, depth))
        return self.extension.search(deep, vector, rerank=self.rerank).hits
