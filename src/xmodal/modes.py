"""Search modes beyond plain dense search, registered by name and loaded on first use.

A mode is a callable ``(engine, query, vector) -> Hits`` where ``vector`` is the encoded query.
Features register their modes here (``register_mode("generative", "xmodal.genret.mode:search")``)
so the engine dispatches on ``Query.mode`` without importing them up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import ValidationError

if TYPE_CHECKING:
    from .engine import Engine
    from .records import Hits, Query


class SearchMode(Protocol):
    def __call__(self, engine: Engine, query: Query, vector: np.ndarray) -> Hits: ...


_MODES: dict[str, str | SearchMode] = {}


def register_mode(name: str, handler: str | SearchMode) -> None:
    """Register a mode as a callable or a lazy ``"module:function"`` reference."""
    _MODES[name] = handler


def available_modes() -> list[str]:
    return ["dense", *sorted(_MODES)]


_DESCRIPTIONS: dict[str, str] = {"dense": "vector search alone (cosine top-k over the target vectors)"}


def describe_modes() -> dict[str, str]:
    """Every mode with a one-line description, in :func:`available_modes` order."""
    return {name: _DESCRIPTIONS.get(name, "") for name in available_modes()}


def get_mode(name: str) -> SearchMode:
    handler = _MODES.get(name)
    if handler is None:
        raise ValidationError("mode", f"unknown search mode {name!r}", f"use one of {', '.join(available_modes())}")
    if isinstance(handler, str):
        module, _, attr = handler.partition(":")
        loaded: Any = getattr(importlib.import_module(module), attr)
        _MODES[name] = handler = loaded
    return handler


# Modes provided by optional features, imported on first use.
_BUILTIN = {
    "generative": ("xmodal.genret.mode:generative", "GENIUS: item IDs decoded from the query by the trained model"),
    "generative-rerank": (
        "xmodal.genret.mode:generative_rerank",
        "GENIUS-R: decoded candidates re-ranked by embedding similarity",
    ),
    "learned": ("xmodal.ltr.mode:learned", "the bandit's plan of strategies, fused, then the trained ranker"),
    "uniform": ("xmodal.ltr.mode:uniform", "every strategy with an equal share, fused (the naive baseline)"),
    "lexical": ("xmodal.ltr.mode:lexical", "BM25F full text alone (title weighted above body)"),
    "structured": ("xmodal.ltr.mode:structured", "attribute constraints understood from the query, alone"),
    "memory": ("xmodal.ltr.mode:memory", "items users acted on for this query before, alone"),
    "explore": ("xmodal.ltr.mode:explore", "the least-shown matching items first (exploration), alone"),
}
for _name, (_ref, _line) in _BUILTIN.items():
    register_mode(_name, _ref)
    _DESCRIPTIONS[_name] = _line
