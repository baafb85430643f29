"""What a search returns: hits aligned with their items, timings, and the optional log id and explanation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import Hits, Item


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
        hits = []
        sources = self.hits.provenance or ("",) * len(self.hits)
        for (item_id, score), item, source in zip(self.hits, self.items, sources, strict=True):
            hits.append(
                {
                    "id": item_id,
                    "score": round(score, 6),
                    "modality": item.modality.value,
                    "title": item.title,
                    "text": item.text,
                    "attributes": dict(item.attributes),
                    "image": item.image,
                    "provenance": source,
                }
            )
        out: dict[str, Any] = {"hits": hits, "took_ms": round(self.took_ms, 3), "encode_ms": round(self.encode_ms, 3)}
        if self.query_id is not None:
            out["query_id"] = self.query_id
        if self.explain is not None:
            out["explain"] = self.explain
        return out
