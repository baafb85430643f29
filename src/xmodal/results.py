"""What a search returns: hits aligned with their items, timings, and the optional log id and explanation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import Hits, Item
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

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON data, in the one view the CLI, REST and MCP share (:mod:`xmodal.view`)."""
        return result_view(self)
