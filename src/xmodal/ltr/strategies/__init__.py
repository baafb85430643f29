"""Candidate generators ("strategies"): each ``retrieve(query, depth) -> Hits`` with provenance."""

from __future__ import annotations

from .base import Strategy
from .dense import DenseStrategy
from .explore import ExploreStrategy
from .lexical import BM25Index, LexicalStrategy
from .memory import MemoryStrategy, predicted_queries
from .structured import QueryUnderstanding, StructuredStrategy, Understanding

__all__ = [
    "BM25Index",
    "DenseStrategy",
    "ExploreStrategy",
    "LexicalStrategy",
    "MemoryStrategy",
    "QueryUnderstanding",
    "Strategy",
    "StructuredStrategy",
    "Understanding",
    "predicted_queries",
]
