"""A LlamaIndex vector store over an xmodal index: ``pip install 'xmodal[llamaindex]'``.

>>> from llama_index.core import StorageContext, VectorStoreIndex                   # doctest: +SKIP
>>> from xmodal.integrations.llamaindex import XmodalVectorStore                    # doctest: +SKIP
>>> storage = StorageContext.from_defaults(vector_store=XmodalVectorStore("my-index"))  # doctest: +SKIP
>>> index = VectorStoreIndex.from_documents(documents, storage_context=storage)     # doctest: +SKIP

A node is an item: its id, its text, its metadata under the attribute ``metadata`` (nested values, lists
and nulls as given), every other field of the node (relationships, templates, excluded keys, its class)
under the attribute ``node``, and its document (``node.ref_doc_id``) as the item's ``parent``, so
``delete(ref_doc_id)`` deletes the document's nodes. An ``ImageNode``'s image (base64 or ``image_path``) is
stored through xmodal's image path. The node's ``embedding`` is stored as given (L2-normalised; a new index
takes the ``caller`` encoder at the first add); a node without one, and a query without
``query_embedding``, is embedded by xmodal's encoder (``encoder=``). Filters: every ``FilterOperator`` and
``FilterCondition`` (:func:`~xmodal.integrations.filters.llamaindex_filter`), nested, applied before the
top-k cut; ``node_ids`` and ``doc_ids`` restrict a query too. Query modes: ``default`` and ``mmr``
(``mmr_threshold``; candidates ``mmr_prefetch_k``, or ``mmr_prefetch_factor`` × k, default 4 × k).
Similarities are cosine similarities (in [-1, 1]), as LlamaIndex's own ``SimpleVectorStore`` gives them.
The async methods run the index's work on a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..encoders import Encoder
from ..engine import Engine
from ..errors import MissingDependency, ValidationError
from ..ingest.prepare import Rejection
from ..records import Item
from .documents import DocumentIndex, Found, Record, build, metadata_of, text_of
from .filters import METADATA, llamaindex_filter

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode, ImageNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node
except ImportError as exc:  # the extra is not installed
    raise MissingDependency("llama-index-core", "llamaindex") from exc

#: The attribute holding a node's other fields (relationships, templates, its class, ``id_``).
NODE = "node"
_NOT_STORED = {"embedding", "metadata", "text", "text_resource", "image"}  # kept elsewhere (or not at all)
_MMR_PREFETCH_FACTOR = 4.0


class XmodalVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store on the xmodal index in folder ``path`` (or an open ``engine``).

    ``encoder`` embeds nodes and queries that come without an embedding; ``dim`` opens a new index of the
    caller's vectors at once (it is otherwise created at the first add); ``engine_options`` go to
    :meth:`xmodal.Engine.open` for a new index.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    _index: DocumentIndex = PrivateAttr()

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        engine: Engine | None = None,
        encoder: str | Encoder | None = None,
        dim: int | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stores_text=True)
        self._index = DocumentIndex(path, engine=engine, encoder=encoder, dim=dim, engine_options=engine_options)

    @classmethod
    def class_name(cls) -> str:
        return "XmodalVectorStore"

    @property
    def client(self) -> Engine | None:
        """The xmodal engine (None while a new index waits for its first add)."""
        return self._index.peek()

    def close(self) -> None:
        """Close the index (when this store opened it)."""
        self._index.close()

    # -- writes ---------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Add (or replace, by node id) nodes with their embeddings; returns their ids. Every good node is
        added; then a refused one raises a :class:`ValidationError` naming it."""
        records: list[Record | Rejection] = []
        for node in nodes:
            made = build(node.node_id, lambda: _item(node))  # noqa: B023 - called at once
            records.append(made if isinstance(made, Rejection) else Record(made, node.embedding))
        return self._index.add(records)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of the document ``ref_doc_id``."""
        self._index.delete_where({"parent": ref_doc_id})

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes of ``node_ids`` that ``filters`` match. Either may be None: no restriction, as in
        LlamaIndex's ``SimpleVectorStore``, so neither deletes every node; an empty ``node_ids`` deletes none."""
        if node_ids is not None and not node_ids:
            return
        if node_ids and not llamaindex_filter(filters):
            self._index.delete(node_ids)
            return
        where = _where(filters, node_ids)
        if where:
            self._index.delete_where(where)
        else:
            self._index.clear()

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters)

    def clear(self) -> None:
        """Delete every node."""
        self._index.clear()

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    # -- reads ----------------------------------------------------------------------------------
    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The nodes of ``node_ids`` (all for None; none for an empty list) that ``filters`` match, in the order
        they were added."""
        if node_ids is not None and not node_ids:
            return []
        return [self._node(item) for item in self._index.matching(_where(filters, node_ids))]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes closest to ``query_embedding`` (or ``query_str``, embedded by xmodal's
        encoder) among those the filters, ``node_ids`` and ``doc_ids`` allow."""
        target = query.query_embedding if query.query_embedding is not None else query.query_str
        if target is None:
            raise ValidationError("query", "has neither query_embedding nor query_str", "give one of them")
        where, k = _where(query.filters, query.node_ids, query.doc_ids), query.similarity_top_k
        if query.mode == VectorStoreQueryMode.MMR:
            found = self._mmr(target, k, where, query.mmr_threshold, kwargs)
        elif query.mode == VectorStoreQueryMode.DEFAULT:
            found = self._index.search(target, k, where)
        else:
            raise ValidationError("mode", f"query mode {query.mode.value!r} is not supported", "use default or mmr")
        return VectorStoreQueryResult(
            nodes=[self._node(f.item) for f in found],
            similarities=[f.score for f in found],
            ids=[f.item.id for f in found],
        )

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    def _mmr(
        self, target: Any, k: int, where: dict[str, Any], threshold: float | None, options: dict[str, Any]
    ) -> list[Found]:
        """Maximal marginal relevance over the closest candidates, by LlamaIndex's own MMR."""
        fetch = options.get("mmr_prefetch_k") or int(k * options.get("mmr_prefetch_factor", _MMR_PREFETCH_FACTOR))
        vector, found, vectors = self._index.candidates(target, max(k, fetch), where)
        if not found:
            return []
        _, chosen = get_top_k_mmr_embeddings(
            vector.tolist(),
            vectors.tolist(),
            similarity_top_k=k,
            embedding_ids=list(range(len(found))),
            mmr_threshold=threshold if threshold is not None else options.get("mmr_threshold"),
        )
        return [found[i] for i in chosen]

    def _node(self, item: Item) -> BaseNode:
        """An item as the node it was (an item added otherwise: a ``TextNode``)."""
        held = item.attributes.get(NODE)
        fields = dict(held) if isinstance(held, dict) else {}
        text = text_of(item)
        content = {**fields, "id_": item.id, "metadata": metadata_of(item), "embedding": None, "text": text}
        node_type = str(fields.get("class_name", "TextNode"))
        if node_type == ImageNode.class_name():
            content["image"] = self._index.image_base64(item) if item.image is not None else None
        return metadata_dict_to_node({"_node_content": json.dumps(content), "_node_type": node_type}, text=text)


def _item(node: BaseNode) -> Item:
    """A node as an item (see the module's docstring)."""
    fields = node.model_dump(mode="json", exclude=_NOT_STORED)
    image: str | bytes | None = None
    if isinstance(node, ImageNode):
        image = base64.b64decode(node.image) if node.image else node.image_path
    document = node.ref_doc_id
    return Item.create(
        node.node_id,
        text=node.get_content(metadata_mode=MetadataMode.NONE),
        attributes={METADATA: node.metadata, NODE: fields},
        image=image,
        parent=document if document and document != node.node_id else None,
    )


def _where(
    filters: MetadataFilters | None, node_ids: list[str] | None, doc_ids: list[str] | None = None
) -> dict[str, Any]:
    """xmodal's filter for LlamaIndex's filters with node and document ids (``{}``: everything)."""
    parts = [llamaindex_filter(filters)]
    if node_ids:
        parts.append({f"{NODE}.id_": {"in": list(node_ids)}})
    if doc_ids:
        parts.append({"parent": {"in": list(doc_ids)}})
    parts = [p for p in parts if p]
    return {"and": parts} if len(parts) > 1 else (parts[0] if parts else {})


__all__ = ["XmodalVectorStore"]
