"""What the LangChain and LlamaIndex integrations share: an index folder seen as documents.

A document (a LangChain ``Document``, a LlamaIndex node) is an item: its id, its text as the item's
``text``, its metadata, exactly as given (nulls, lists, nested objects), under the attribute
``metadata`` (:data:`~xmodal.integrations.filters.METADATA`), an image as the item's image.

**Vectors.** When the caller brings the embeddings (a LangChain ``Embeddings``, a LlamaIndex node's
``embedding``), they are stored as given (L2-normalised) and nothing is encoded: a new index then gets the
``caller`` encoder (:mod:`xmodal.encoders.caller`), created at the first add, when the vectors' length is
known. Without them, xmodal's own encoder (``encoder=``, the default ``offline`` one) encodes texts, images
and queries. An index folder that exists is opened with its own settings.

**Scores.** A hit's score is the cosine similarity of the query and the item's vector, in [-1, 1];
:func:`relevance` maps it to [0, 1] as ``(1 + cosine) / 2`` (0: opposite, 0.5: unrelated, 1: the same
direction). Queries are normalised here, so a caller's unnormalised query vector scores as its direction.

**Guards.** Reads are screened as xmodal's own API screens them: hits as a search's hits, ``get`` as a batch
get, listings as scroll pages (under the caller's guards policy: :func:`~xmodal.extension.as_caller`).
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import MAX_PAGE
from ..encoders import Encoder
from ..encoders.caller import CallerEncoder
from ..engine import Engine
from ..errors import ConfigError, ValidationError
from ..ingest.prepare import Rejection
from ..records import Item, Query
from ..updates import query_vector
from .filters import METADATA


@dataclass(frozen=True, slots=True)
class Record:
    """An item to add, with the caller's vector for it (None: xmodal encodes it)."""

    item: Item
    vector: Any = None


@dataclass(frozen=True, slots=True)
class Found:
    """A hit: the item and its cosine similarity to the query."""

    item: Item
    score: float


def relevance(score: float) -> float:
    """A cosine similarity in [-1, 1] as a relevance in [0, 1]: ``(1 + cosine) / 2``, clipped."""
    return min(1.0, max(0.0, (1.0 + float(score)) / 2.0))


def new_id() -> str:
    """An id for a document that came without one."""
    return str(uuid.uuid4())


def build(item_id: str, make: Callable[[], Item]) -> Item | Rejection:
    """``make()``, or the reason it was refused (so one bad document does not stop the others)."""
    try:
        return make()
    except ValidationError as exc:
        return Rejection(item_id, str(exc))


def metadata_of(item: Item) -> dict[str, Any]:
    """A document's metadata: the ``metadata`` attribute, or every attribute of an item added otherwise."""
    held = item.attributes.get(METADATA)
    return dict(held) if isinstance(held, Mapping) else dict(item.attributes)


def text_of(item: Item) -> str:
    """A document's text: the item's text as given (with its title before it, for an item that has one)."""
    return item.document_text if item.title else item.text


class DocumentIndex:
    """An engine for an integration: the one given, or one it opens on ``path`` (now, or at the first add
    for a new index of the caller's vectors, whose length is not known before). ``engine_options`` go to
    :meth:`Engine.open` for a new index (default: no extensions, dense search only)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        engine: Engine | None = None,
        encoder: str | Encoder | None = None,
        dim: int | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (path is None) == (engine is None):
            raise ConfigError("give the index folder (path=...) or an open engine (engine=...), not both")
        self._engine = engine
        self._owned = engine is None
        self._path = Path(path) if path is not None else None
        self._encoder = encoder
        self._options = dict(engine_options or {})
        self._lock = threading.Lock()
        self._closed = False
        if engine is None and (self._exists() or encoder is not None or dim is not None):
            self.require(dim)

    def _exists(self) -> bool:
        return self._path is not None and (self._path / "store.sqlite").exists()

    def peek(self) -> Engine | None:
        """The engine, or None while a new index waits for its first add; a closed store is an error."""
        if self._closed:
            raise ConfigError("this vector store is closed: open a new one on the index folder")
        return self._engine

    def require(self, dim: int | None) -> Engine:
        """The engine, opened now if it is not yet: a new index of ``dim``-long caller vectors (``dim`` None:
        of xmodal's encoder)."""
        with self._lock:
            engine = self.peek()
            if engine is None:
                assert self._path is not None
                if self._exists():
                    options = dict(self._options)
                    if self._encoder is not None:
                        options["encoder"] = self._encoder
                else:
                    encoder = self._encoder if self._encoder is not None or dim is None else CallerEncoder(dim)
                    options = {"extensions": [], **self._options, "encoder": encoder}
                engine = self._engine = Engine.open(self._path, **options)
            return engine

    def add(self, records: Sequence[Record | Rejection]) -> list[str]:
        """Add (or replace) the records' items, the last of a repeated id winning; every good one is added,
        then a :class:`ValidationError` lists the refused ones. Returns the ids in the order given."""
        order = [r.where if isinstance(r, Rejection) else r.item.id for r in records]
        rejected = [r for r in records if isinstance(r, Rejection)]
        latest = {r.item.id: r for r in records if isinstance(r, Record)}
        if latest:
            given = {i: r.vector for i, r in latest.items() if r.vector is not None}
            engine = self.require(len(next(iter(given.values()))) if given else None)
            if isinstance(engine.encoder, CallerEncoder):  # nothing to encode those without: refused one by one
                rejected += [Rejection(i, _no_vector(i)) for i in latest.keys() - given.keys()]
                latest = {i: r for i, r in latest.items() if i in given}
            report = engine.add([r.item for r in latest.values()], vectors=given or None) if latest else None
            rejected += report.rejected if report is not None else []
        if rejected:
            reasons = "; ".join(r.reason for r in rejected[:3]) + ("; ..." if len(rejected) > 3 else "")
            raise ValidationError(
                "documents",
                f"{len(rejected)} of {len(order)} not added: {reasons}",
                "fix them and add them again (the others were added)",
            )
        return order

    def vector_of(self, query: Any) -> np.ndarray | None:
        """A query's unit vector: a text encoded by the index's encoder, or the caller's vector checked and
        normalised (None while a new index waits for its first add: nothing to search)."""
        engine = self.peek()
        if engine is None:
            return None
        return engine.encode_query(Query(text=query)) if isinstance(query, str) else unit(query)

    def search(self, query: Any, k: int, filters: Mapping[str, Any] | None = None) -> list[Found]:
        """The ``k`` items closest to ``query`` (a text, encoded by the index's encoder, or a vector) among
        those ``filters`` match, best first."""
        return self._search(query, k, filters, with_vectors=False)[1]

    def candidates(
        self, query: Any, k: int, filters: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, list[Found], np.ndarray]:
        """For maximal marginal relevance: the query's unit vector, the ``k`` closest hits as :meth:`search`
        finds them, and their vectors (one row per hit: the engine's hit vectors)."""
        vector, found, vectors = self._search(query, k, filters, with_vectors=True)
        if vector is None or not found:
            return np.zeros(0, dtype=np.float32), [], np.zeros((0, 0), dtype=np.float32)
        zero = np.zeros(len(vector), dtype=np.float32)  # a hit deleted since the search answered
        return vector, found, np.stack([v if v is not None else zero for v in vectors])

    def _search(
        self, query: Any, k: int, filters: Mapping[str, Any] | None, *, with_vectors: bool
    ) -> tuple[np.ndarray | None, list[Found], tuple[np.ndarray | None, ...]]:
        """The query's vector, the hits (cosine clipped to [-1, 1]) and, when asked, their vectors."""
        engine, vector = self.peek(), self.vector_of(query)
        if engine is None or vector is None:
            return vector, [], ()
        result = engine.search_by_vector(vector, k=k, filters=filters or None, with_vectors=with_vectors)
        scores = result.hits.scores.tolist()
        found = [Found(item, min(1.0, max(-1.0, float(s)))) for item, s in zip(result.items, scores, strict=True)]
        return vector, found, result.vectors or ()

    def get(self, ids: Sequence[str]) -> list[Item]:
        """The items of ``ids`` that exist, in that order, each once, as the guards let the caller see them (as
        :meth:`Engine.get_many <xmodal.Engine.get_many>` screens them: a withheld item is left out)."""
        engine = self.peek()
        if engine is None:
            return []
        return list(engine.get_many(list(dict.fromkeys(ids)), screen=True).items)

    def matching(self, filters: Mapping[str, Any]) -> list[Item]:
        """Every item ``filters`` match (every item for none), in the order they were added, as the guards let
        the caller see them (the pages of :meth:`Engine.scroll <xmodal.Engine.scroll>`)."""
        engine = self.peek()
        if engine is None:
            return []
        items: list[Item] = []
        cursor: str | None = None
        while True:
            page = engine.scroll(filters or None, limit=MAX_PAGE, cursor=cursor)
            items += page.items
            if page.next_cursor is None:
                return items
            cursor = page.next_cursor

    def delete(self, ids: Sequence[str]) -> int:
        """Delete items by id (missing ones ignored); how many existed."""
        engine = self.peek()
        return engine.delete(list(ids)) if engine is not None and ids else 0

    def delete_where(self, filters: Mapping[str, Any]) -> int:
        """Delete every item ``filters`` match; how many."""
        engine = self.peek()
        return engine.delete_where(filters) if engine is not None else 0

    def clear(self) -> int:
        """Delete every item; how many there were."""
        engine = self.peek()
        return engine.clear() if engine is not None else 0

    def image_base64(self, item: Item) -> str | None:
        """The item's image as base64 (as LangChain and LlamaIndex carry images), None when it has none."""
        ref, engine = item.image, self.peek()
        if ref is None or engine is None:
            return None
        data = ref if isinstance(ref, bytes) else engine.media.path(ref).read_bytes()
        return base64.b64encode(data).decode("ascii")

    def close(self) -> None:
        """Close the engine if this index opened it."""
        with self._lock:
            if self._engine is not None and self._owned:
                self._engine.close()
            self._closed = True


def _no_vector(item_id: str) -> str:
    return str(
        ValidationError(
            "vectors",
            "this index holds the caller's vectors (encoder 'caller'), and this document came without one",
            "give it an embedding",
            item=item_id,
        )
    )


def unit(vector: Any, field: str = "vector") -> np.ndarray:
    """A caller's vector checked (numbers, finite, not all zeros) and scaled to unit length, as float32."""
    vec = query_vector(vector, field)[0].astype(np.float64)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValidationError(field, "has no direction (all zeros) or overflows", "give a non-zero vector")
    out: np.ndarray = (vec / norm).astype(np.float32)
    return out
