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
register_mode("generative", "xmodal.genret.mode:generative")
register_mode("generative-rerank", "xmodal.genret.mode:generative_rerank")
for _name in ("learned", "uniform", "lexical", "structured", "memory", "explore"):  # learning to rank and retrieve
    register_mode(_name, f"xmodal.ltr.mode:{_name}")
