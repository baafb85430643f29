"""The ``caller`` encoder: an index whose vectors all come from the caller.

It makes no vectors. Items are added with their own vectors (``Engine.add(items, vectors=...)``) and
searched with the caller's query vector (``Engine.search_by_vector``); a text or image that would need
encoding is refused with an error saying so. It declares the bundled vector kinds (``text``, ``image``,
``combined``), so one vector given for an item is filed under every kind its modality has. The LangChain
and LlamaIndex integrations create such an index when the caller brings an embedding model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, ValidationError
from . import identity
from .base import Content, Purpose, Vectors


class CallerEncoder:
    """The encoder of an index of ``dim``-dimensional vectors that all come from the caller."""

    name = "caller"
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

    def __init__(self, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"encoder 'caller': dim must be a positive integer (the vectors' length), got {dim!r}")
        self.dim = dim

    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors:
        raise ValidationError(
            "vectors",
            f"this index's vectors come from the caller (encoder 'caller', {self.dim} dimensions): it encodes no "
            "text or media",
            "add items with their vectors (Engine.add(items, vectors=...)) and search with a vector "
            "(Engine.search_by_vector)",
        )

    def encode_queries(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.QUERY)

    def encode_documents(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.DOCUMENT)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            identity.IDENTITY: identity.of_parameters("the caller's vectors", {"dim": self.dim}),
        }
