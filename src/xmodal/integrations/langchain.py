"""A LangChain ``VectorStore`` over an xmodal index: ``pip install 'xmodal[langchain]'``.

>>> from xmodal.integrations.langchain import XmodalVectorStore      # doctest: +SKIP
>>> store = XmodalVectorStore("my-index", embedding=my_embeddings)   # doctest: +SKIP
>>> store.add_texts(["a red mug"], [{"source": "shop", "tags": ["sale"]}])   # doctest: +SKIP
>>> store.similarity_search("mug", k=4, filter={"tags": {"$in": ["sale"]}})  # doctest: +SKIP

``embedding`` (a LangChain ``Embeddings``) embeds texts and queries, and is kept: the index stores its
vectors as given. Without one, xmodal's own encoder (``encoder=``, default ``offline``) embeds them, and
images too. ``add_images`` stores images through xmodal's image path (checked, copied into the index);
their vectors come from the embedding's ``embed_image`` when it has one (OpenCLIP's does), else xmodal's
encoder. Filters are LangChain's Mongo-style dicts (:func:`~xmodal.integrations.filters.langchain_filter`);
scores from ``similarity_search_with_score`` are cosine similarities, relevance scores are
``(1 + cosine) / 2`` in [0, 1]. MMR and the retriever (``as_retriever()``, every search type) work. The
async methods await the embedding's own async methods and run the index's work on LangChain's executor
(``run_in_executor``), as LangChain's own defaults do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import Encoder
from ..engine import Engine
from ..errors import MissingDependency, ValidationError
from ..ingest.prepare import Rejection
from ..records import Item
from .documents import DocumentIndex, Record, build, metadata_of, new_id, relevance, text_of
from .filters import METADATA, langchain_filter

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # the extra is not installed
    raise MissingDependency("langchain-core", "langchain") from exc

Filter = dict[str, Any] | None


class XmodalVectorStore(VectorStore):
    """A LangChain vector store on the xmodal index in folder ``path`` (or an open ``engine``).

    ``embedding``: the caller's embedding model (its vectors are stored and searched as given); None:
    xmodal's ``encoder`` embeds. ``dim`` opens a new index of the caller's vectors at once (it is otherwise
    created at the first add); ``engine_options`` go to :meth:`xmodal.Engine.open` for a new index.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        embedding: Embeddings | None = None,
        *,
        engine: Engine | None = None,
        encoder: str | Encoder | None = None,
        dim: int | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        self._embedding = embedding
        self.index = DocumentIndex(path, engine=engine, encoder=encoder, dim=dim, engine_options=engine_options)

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    @property
    def engine(self) -> Engine | None:
        """The xmodal engine (None while a new index waits for its first add)."""
        return self.index.peek()

    def close(self) -> None:
        """Close the index (when this store opened it)."""
        self.index.close()

    def __enter__(self) -> XmodalVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add (or replace, by id) texts with their metadata; returns their ids (new ones for missing ids).
        Every good text is added; then a refused one raises a :class:`ValidationError` naming it."""
        texts = list(texts)
        vectors = self._embedding.embed_documents(texts) if self._embedding is not None else None
        return self.index.add(_text_records(texts, metadatas, ids, vectors))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        vectors = await self._embedding.aembed_documents(texts) if self._embedding is not None else None
        return await run_in_executor(None, self.index.add, _text_records(texts, metadatas, ids, vectors))

    def add_images(
        self, uris: Sequence[str], metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None
    ) -> list[str]:
        """Add images (paths) with their metadata; each is checked and copied into the index. Their vectors
        come from the embedding's ``embed_image``, or from xmodal's encoder when the store has no embedding.
        A found image's ``page_content`` is the image in base64 (as LangChain's multimodal stores give it)."""
        uris = list(uris)
        vectors = None
        if self._embedding is not None:
            embed_image = getattr(self._embedding, "embed_image", None)
            if not callable(embed_image):
                raise ValidationError(
                    "embedding",
                    f"{type(self._embedding).__name__} has no embed_image: it cannot embed images",
                    "use an embedding with embed_image (e.g. OpenCLIPEmbeddings), or a store without embedding: "
                    "xmodal's own encoder embeds images",
                )
            vectors = embed_image(uris)
        return self.index.add(
            _records(uris, metadatas, ids, vectors, lambda i, uri, md: Item.create(i, image=uri, attributes=md))
        )

    def delete(self, ids: list[str] | None = None, *, filter: Filter = None, **kwargs: Any) -> bool:
        """Delete documents by id (missing ones are ignored) or every document ``filter`` matches."""
        if (ids is None) == (filter is None):
            raise ValidationError(
                "ids", "give the ids to delete, or filter=... (not both)", "to delete every document, call clear()"
            )
        if ids is not None:
            self.index.delete(ids)
        else:
            self.index.delete_where(langchain_filter(filter))
        return True

    async def adelete(self, ids: list[str] | None = None, *, filter: Filter = None, **kwargs: Any) -> bool:
        return await run_in_executor(None, self.delete, ids, filter=filter)

    def clear(self) -> int:
        """Delete every document; returns how many there were."""
        return self.index.clear()

    # -- reads ----------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [self._document(item) for item in self.index.get(ids)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await run_in_executor(None, self.get_by_ids, ids)

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` closest documents with their cosine similarity (in [-1, 1]), ``filter`` applied first."""
        return self._scored(self._query(query), k, filter)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await run_in_executor(None, self._scored, await self._aquery(query), k, filter)

    def similarity_search(self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self._scored(embedding, k, filter)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        return await run_in_executor(None, self.similarity_search_by_vector, embedding, k, filter)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity → relevance in [0, 1]: ``(1 + cosine) / 2``."""
        return relevance

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents among the ``fetch_k`` closest, chosen for relevance and diversity (MMR:
        ``lambda_mult`` 1 is relevance alone, 0 diversity alone)."""
        return self.max_marginal_relevance_search_by_vector(self._query(query), k, fetch_k, lambda_mult, filter)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        return await self.amax_marginal_relevance_search_by_vector(
            await self._aquery(query), k, fetch_k, lambda_mult, filter
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: Any,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        vector, found, vectors = self.index.candidates(embedding, max(k, fetch_k), langchain_filter(filter))
        chosen = maximal_marginal_relevance(vector, vectors.tolist(), lambda_mult=lambda_mult, k=k) if found else []
        return [self._document(found[i].item) for i in chosen]

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: Any,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        return await run_in_executor(
            None, self.max_marginal_relevance_search_by_vector, embedding, k, fetch_k, lambda_mult, filter
        )

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str | Path | None = None,
        **kwargs: Any,
    ) -> XmodalVectorStore:
        """A store on the index folder ``path`` with ``texts`` added."""
        store = cls(path, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- helpers --------------------------------------------------------------------------------
    def _query(self, query: str) -> Any:
        """What a text query is searched with: the embedding's vector, or the text for xmodal's encoder."""
        return self._embedding.embed_query(query) if self._embedding is not None else query

    async def _aquery(self, query: str) -> Any:
        return await self._embedding.aembed_query(query) if self._embedding is not None else query

    def _scored(self, query: Any, k: int, filter: Filter) -> list[tuple[Document, float]]:
        return [(self._document(f.item), f.score) for f in self.index.search(query, k, langchain_filter(filter))]

    def _document(self, item: Item) -> Document:
        """An item as a LangChain document: its text (an image-only item: the image in base64), its metadata."""
        text = text_of(item)
        if not text.strip() and item.image is not None:
            text = self.index.image_base64(item) or ""
        return Document(id=item.id, page_content=text, metadata=metadata_of(item))


def _text_records(
    texts: list[str], metadatas: list[dict[str, Any]] | None, ids: list[str] | None, vectors: Any
) -> list[Record | Rejection]:
    return _records(texts, metadatas, ids, vectors, lambda i, text, md: Item.create(i, text=text, attributes=md))


def _records(
    sources: list[Any],
    metadatas: list[dict[str, Any]] | None,
    ids: Sequence[str | None] | None,
    vectors: Any,
    make: Callable[[str, Any, dict[str, Any]], Item],
) -> list[Record | Rejection]:
    """One record per source (a text, an image path) with its metadata, id and vector."""
    n = len(sources)
    for name, given in (("metadatas", metadatas), ("ids", ids), ("embeddings", vectors)):
        if given is not None and len(given) != n:
            raise ValidationError(name, f"has {len(given)} entries for {n} documents", "give one per document")
    out: list[Record | Rejection] = []
    for i, source in enumerate(sources):
        item_id = (ids[i] if ids is not None else None) or new_id()
        attributes = {METADATA: (metadatas[i] if metadatas is not None else None) or {}}
        made = build(item_id, lambda: make(item_id, source, attributes))  # noqa: B023 - called at once
        vector = np.asarray(vectors[i]) if vectors is not None else None
        out.append(made if isinstance(made, Rejection) else Record(made, vector))
    return out


__all__ = ["XmodalVectorStore"]
