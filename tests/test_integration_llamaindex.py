"""The LlamaIndex integration: VectorStoreIndex end to end over xmodal, every filter operator and condition
checked against LlamaIndex's own reference evaluation, node ids, relationships, embeddings and deletes."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("llama_index.core")

from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from xmodal.encoders import Content, HashingEncoder  # noqa: E402
from xmodal.errors import ValidationError  # noqa: E402
from xmodal.integrations.llamaindex import XmodalVectorStore  # noqa: E402


class WordEmbedding(BaseEmbedding):
    """A real, deterministic LlamaIndex embedding for tests: xmodal's hashing encoder (words and trigrams)."""

    def _vector(self, text: str) -> list[float]:
        return [float(x) for x in HashingEncoder().encode_documents([Content(text=text)])[0]]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


@pytest.fixture(autouse=True)
def _embed_model() -> Iterator[None]:
    before = Settings._embed_model
    Settings.embed_model = WordEmbedding()
    yield
    Settings._embed_model = before


@pytest.fixture
def vector_store(tmp_path: Path) -> Iterator[XmodalVectorStore]:
    store = XmodalVectorStore(tmp_path / "idx")
    yield store
    store.close()


DOCS = [
    Document(
        text="red apples from the orchard",
        id_="apple",
        metadata={"color": "red", "n": 1, "tags": ["a", "b"], "title": "Red Apple"},
    ),
    Document(
        text="a clear blue sky over the sea",
        id_="sky",
        metadata={"color": "blue", "n": 2, "tags": ["b"], "title": "blue sky"},
    ),
    Document(
        text="green grass in the meadow", id_="grass", metadata={"color": "green", "n": 3, "tags": [], "title": "Green"}
    ),
    Document(text="black coal in a bucket", id_="coal", metadata={"n": 4, "title": ""}),
    Document(
        text="apple pie with cream", id_="pie", metadata={"color": None, "n": 5.5, "tags": ["c"], "title": "apple pie"}
    ),
]


def fresh_docs() -> list[Document]:
    return [Document(text=d.text, id_=d.id_, metadata=dict(d.metadata)) for d in DOCS]


@pytest.fixture
def index(vector_store: XmodalVectorStore) -> VectorStoreIndex:
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex.from_documents(fresh_docs(), storage_context=storage)


def docs_of(nodes: list[Any]) -> set[str]:
    return {n.node.ref_doc_id for n in nodes}


def test_vector_store_index_end_to_end(index: VectorStoreIndex, vector_store: XmodalVectorStore) -> None:
    found = index.as_retriever(similarity_top_k=2).retrieve("apples from the orchard")
    assert found[0].node.ref_doc_id == "apple" and found[0].score >= found[1].score
    node = found[0].node
    assert node.get_content() == "red apples from the orchard"
    assert node.metadata == DOCS[0].metadata
    assert node.relationships[NodeRelationship.SOURCE].node_id == "apple"  # relationships kept
    stored = vector_store.get_nodes([node.node_id])
    assert [n.node_id for n in stored] == [node.node_id] and stored[0].relationships == node.relationships
    engine = vector_store.client
    assert engine is not None and engine.encoder.config()["name"] == "caller" and engine.count() == 5
    index.insert(Document(text="yellow banana bread", id_="banana", metadata={"color": "yellow"}))
    assert docs_of(index.as_retriever(similarity_top_k=1).retrieve("banana bread")) == {"banana"}
    index.delete_ref_doc("apple")
    after = index.as_retriever(similarity_top_k=10).retrieve("apples from the orchard")
    assert "apple" not in docs_of(after) and len(after) == 5
    assert engine.count() == 5


def test_the_callers_embeddings_are_kept(vector_store: XmodalVectorStore) -> None:
    mine = np.arange(1, 385, dtype=np.float64)
    nodes = [TextNode(id_="n1", text="anything at all", embedding=mine.tolist(), metadata={"k": 1})]
    assert vector_store.add(nodes) == ["n1"]
    engine = vector_store.client
    assert engine is not None
    assert np.allclose(engine.vectors("n1")["text"], mine / np.linalg.norm(mine), atol=1e-6)
    result = vector_store.query(VectorStoreQuery(query_embedding=(mine * 2).tolist(), similarity_top_k=1))
    assert (
        result.ids == ["n1"]
        and result.similarities is not None
        and result.similarities[0] == pytest.approx(1.0, abs=1e-5)
    )
    assert result.nodes is not None and result.nodes[0].metadata == {"k": 1} and result.nodes[0].embedding is None


# -- every operator and condition, against LlamaIndex's own evaluation (build_metadata_filter_fn) -----
def f(key: str, value: Any, op: FilterOperator) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


OPERATOR_CASES = [
    f("color", "red", FilterOperator.EQ),
    f("n", 3, FilterOperator.EQ),
    f("color", "red", FilterOperator.NE),  # a node without the key (or with null) matches, as in LlamaIndex
    f("n", 2, FilterOperator.GT),
    f("n", 2, FilterOperator.GTE),
    f("n", 3, FilterOperator.LT),
    f("n", 3, FilterOperator.LTE),
    f("n", 5.5, FilterOperator.GTE),
    f("color", ["red", "green"], FilterOperator.IN),
    f("color", ["red", "green"], FilterOperator.NIN),
    f("tags", ["a", "c"], FilterOperator.ANY),
    f("tags", ["a", "b"], FilterOperator.ALL),
    f("tags", "b", FilterOperator.CONTAINS),
    f("title", "pple", FilterOperator.TEXT_MATCH),
    f("title", "APPLE", FilterOperator.TEXT_MATCH_INSENSITIVE),
    f("tags", None, FilterOperator.IS_EMPTY),
    f("color", None, FilterOperator.IS_EMPTY),
    f("missing_key", "x", FilterOperator.EQ),
]


def reference(filters: MetadataFilters, docs: list[Document]) -> set[str]:
    """LlamaIndex's own answer; nested filters combined by the same rule (it does not nest them itself)."""
    leaves = [x for x in filters.filters if isinstance(x, MetadataFilter)]
    by_doc = {d.id_: d.metadata for d in docs}
    leaf_fns = [build_metadata_filter_fn(lambda i: by_doc[i], MetadataFilters(filters=[leaf])) for leaf in leaves]
    nested = [reference(x, docs) for x in filters.filters if isinstance(x, MetadataFilters)]
    out = set()
    for doc_id in by_doc:
        results = [fn(doc_id) for fn in leaf_fns] + [doc_id in n for n in nested]
        condition = filters.condition or FilterCondition.AND
        held = {FilterCondition.AND: all, FilterCondition.OR: any}.get(condition, lambda r: not any(r))(results)
        if held:
            out.add(doc_id)
    return out


def test_the_cases_cover_every_operator_and_condition() -> None:
    assert {c.operator for c in OPERATOR_CASES} == set(FilterOperator)
    assert {c.condition for c in CONDITION_CASES} == set(FilterCondition)


@pytest.mark.parametrize("one", OPERATOR_CASES, ids=[f"{c.key} {c.operator.value} {c.value}" for c in OPERATOR_CASES])
def test_every_filter_operator(index: VectorStoreIndex, vector_store: XmodalVectorStore, one: MetadataFilter) -> None:
    filters = MetadataFilters(filters=[one])
    expected = reference(filters, DOCS)
    assert docs_of(index.as_retriever(similarity_top_k=10, filters=filters).retrieve("apples")) == expected
    assert {n.ref_doc_id for n in vector_store.get_nodes(filters=filters)} == expected
    k = max(1, len(expected))  # filters apply before the top-k cut: k hits when k match
    assert len(index.as_retriever(similarity_top_k=k, filters=filters).retrieve("sky")) == len(expected)


CONDITION_CASES = [
    MetadataFilters(
        filters=[f("color", "red", FilterOperator.EQ), f("n", 2, FilterOperator.LT)], condition=FilterCondition.AND
    ),
    MetadataFilters(
        filters=[f("color", "blue", FilterOperator.EQ), f("n", 4, FilterOperator.GTE)], condition=FilterCondition.OR
    ),
    MetadataFilters(
        filters=[f("color", "blue", FilterOperator.EQ), f("n", 4, FilterOperator.GTE)], condition=FilterCondition.NOT
    ),
    MetadataFilters(
        filters=[
            f("tags", "b", FilterOperator.CONTAINS),
            MetadataFilters(
                filters=[f("n", 2, FilterOperator.EQ), f("title", "GREEN", FilterOperator.TEXT_MATCH_INSENSITIVE)],
                condition=FilterCondition.NOT,
            ),
        ],
        condition=FilterCondition.AND,
    ),
    MetadataFilters(
        filters=[
            MetadataFilters(filters=[f("color", "green", FilterOperator.EQ)]),
            MetadataFilters(
                filters=[f("n", 4, FilterOperator.GT), f("tags", None, FilterOperator.IS_EMPTY)],
                condition=FilterCondition.NOT,
            ),
        ],
        condition=FilterCondition.OR,
    ),
]


@pytest.mark.parametrize("filters", CONDITION_CASES, ids=range(len(CONDITION_CASES)))
def test_every_filter_condition_nested(
    index: VectorStoreIndex, vector_store: XmodalVectorStore, filters: MetadataFilters
) -> None:
    expected = reference(filters, DOCS)
    assert expected and expected != {d.id_ for d in DOCS}  # each case tells something
    assert docs_of(index.as_retriever(similarity_top_k=10, filters=filters).retrieve("apples")) == expected
    assert {n.ref_doc_id for n in vector_store.get_nodes(filters=filters)} == expected


def test_document_keys_and_id_restrictions(index: VectorStoreIndex, vector_store: XmodalVectorStore) -> None:
    by_doc = MetadataFilters(filters=[f("doc_id", ["sky", "coal"], FilterOperator.IN)])
    assert docs_of(index.as_retriever(similarity_top_k=10, filters=by_doc).retrieve("x")) == {"sky", "coal"}
    assert docs_of(index.as_retriever(similarity_top_k=10, doc_ids=["grass"]).retrieve("x")) == {"grass"}
    some = [n.node_id for n in vector_store.get_nodes()][:2]
    found = vector_store.query(
        VectorStoreQuery(query_str=None, query_embedding=[1.0] * 384, similarity_top_k=10, node_ids=some)
    )
    assert set(found.ids or []) == set(some)
    assert [n.node_id for n in vector_store.get_nodes(node_ids=some[::-1])] == some


def test_bad_filters_name_the_field(index: VectorStoreIndex) -> None:
    with pytest.raises(ValidationError, match="metadata.n"):
        index.as_retriever(filters=MetadataFilters(filters=[f("n", "x", FilterOperator.GT)])).retrieve("x")
    with pytest.raises(ValidationError, match="mode"):
        index.as_retriever(vector_store_query_mode=VectorStoreQueryMode.HYBRID).retrieve("x")


def test_deletes(index: VectorStoreIndex, vector_store: XmodalVectorStore) -> None:
    nodes = {n.ref_doc_id: n.node_id for n in vector_store.get_nodes()}
    vector_store.delete_nodes([])  # an empty list deletes nothing (as in SimpleVectorStore)
    assert len(vector_store.get_nodes()) == 5 and vector_store.get_nodes([]) == []
    vector_store.delete_nodes([nodes["sky"], "no-such-node"])
    assert {n.ref_doc_id for n in vector_store.get_nodes()} == {"apple", "grass", "coal", "pie"}
    vector_store.delete_nodes(filters=MetadataFilters(filters=[f("n", 4, FilterOperator.GTE)]))
    assert {n.ref_doc_id for n in vector_store.get_nodes()} == {"apple", "grass"}
    vector_store.delete_nodes(
        [nodes["apple"], nodes["grass"]], filters=MetadataFilters(filters=[f("color", "red", FilterOperator.EQ)])
    )
    assert {n.ref_doc_id for n in vector_store.get_nodes()} == {"grass"}
    vector_store.delete("no-such-document")
    vector_store.clear()
    assert vector_store.get_nodes() == [] and index.as_retriever().retrieve("grass") == []


@pytest.mark.asyncio
async def test_async_paths(index: VectorStoreIndex, vector_store: XmodalVectorStore) -> None:
    found = await index.as_retriever(similarity_top_k=1).aretrieve("blue sky over the sea")
    assert docs_of(found) == {"sky"}
    await index.ainsert_nodes([TextNode(id_="t1", text="purple plums", metadata={"color": "purple"})])
    many = await asyncio.gather(
        *(index.as_retriever(similarity_top_k=1).aretrieve(q) for q in ("plums", "coal bucket"))
    )
    assert [r[0].node.node_id for r in many][0] == "t1" and docs_of(many[1]) == {"coal"}
    await vector_store.adelete("coal")
    await vector_store.adelete_nodes(["t1"])
    assert {n.ref_doc_id for n in await vector_store.aget_nodes()} == {"apple", "sky", "grass", "pie"}
    await vector_store.aclear()
    assert (await vector_store.aquery(VectorStoreQuery(query_embedding=[1.0] * 384, similarity_top_k=3))).ids == []


def test_mmr_mode(vector_store: XmodalVectorStore) -> None:
    emb = WordEmbedding()
    texts = {"p1": "red apple pie", "p2": "red apple pie!", "t": "green apple tart", "s": "blue sky"}
    vector_store.add([TextNode(id_=i, text=t, embedding=emb.get_text_embedding(t)) for i, t in texts.items()])
    query = emb.get_query_embedding("red apple pie")
    plain = vector_store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=2))
    assert set(plain.ids or []) == {"p1", "p2"}
    mmr = vector_store.query(
        VectorStoreQuery(query_embedding=query, similarity_top_k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.3)
    )
    assert mmr.ids is not None and mmr.ids[0] in {"p1", "p2"} and mmr.ids[1] not in {"p1", "p2"}
    assert mmr.similarities is not None and mmr.similarities[0] == pytest.approx(plain.similarities[0])  # type: ignore[index]


def test_metadata_shapes_round_trip(vector_store: XmodalVectorStore) -> None:
    shapes: list[dict[str, Any]] = [
        {},
        {"none": None, "list": [1, "x", None, {"deep": [True]}], "obj": {"a": {"b": 1}}, "empty": []},
        {"parent": "p", "span": 1, "ref_doc_id_like": "r", "dotted.key": 2},
    ]
    emb = WordEmbedding()
    nodes = [
        TextNode(id_=f"m{i}", text=f"node {i}", metadata=md, embedding=emb.get_text_embedding(f"node {i}"))
        for i, md in enumerate(shapes)
    ]
    vector_store.add(nodes)
    assert [n.metadata for n in vector_store.get_nodes([f"m{i}" for i in range(3)])] == shapes
    nested = MetadataFilters(filters=[f("obj.a.b", 1, FilterOperator.EQ)])
    assert [n.node_id for n in vector_store.get_nodes(filters=nested)] == ["m1"]


def test_nodes_without_embeddings_use_xmodals_encoder(tmp_path: Path) -> None:
    store = XmodalVectorStore(tmp_path / "idx", encoder="hashing")
    try:
        store.add([TextNode(id_="a", text="red apples from the orchard"), TextNode(id_="s", text="a clear blue sky")])
        found = store.query(VectorStoreQuery(query_str="apples orchard", similarity_top_k=2))
        assert found.ids == ["a", "s"]
        assert store.client is not None and store.client.encoder.config()["name"] == "hashing"
    finally:
        store.close()


def test_image_nodes_keep_their_image(vector_store: XmodalVectorStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 120, dtype=np.uint8)).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    node = ImageNode(id_="img", image=data, text="a grey square", metadata={"kind": "image"}, embedding=[0.5] * 384)
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="album")
    vector_store.add([node])
    back = vector_store.get_nodes(["img"])[0]
    assert isinstance(back, ImageNode) and back.image == data and back.text == "a grey square"
    assert back.ref_doc_id == "album" and back.metadata == {"kind": "image"}
    engine = vector_store.client
    assert engine is not None and engine.get("img").modality == "image+text"
    vector_store.delete("album")
    assert vector_store.get_nodes() == []


def test_reopened_index_answers_through_from_vector_store(tmp_path: Path) -> None:
    first = XmodalVectorStore(tmp_path / "idx")
    VectorStoreIndex.from_documents(fresh_docs(), storage_context=StorageContext.from_defaults(vector_store=first))
    first.close()
    again = XmodalVectorStore(tmp_path / "idx")
    try:
        index = VectorStoreIndex.from_vector_store(again)
        assert docs_of(index.as_retriever(similarity_top_k=1).retrieve("blue sky over the sea")) == {"sky"}
    finally:
        again.close()


def test_a_bad_node_does_not_stop_the_others(vector_store: XmodalVectorStore) -> None:
    emb = [0.1] * 384
    with pytest.raises(ValidationError, match="1 of 3 not added") as err:
        vector_store.add(
            [
                TextNode(id_="ok1", text="fine", embedding=emb),
                TextNode(id_="blank", text="   ", embedding=emb),
                TextNode(id_="ok2", text="also fine", embedding=emb),
            ]
        )
    assert "blank" in str(err.value)
    assert sorted(n.node_id for n in vector_store.get_nodes()) == ["ok1", "ok2"]
    with pytest.raises(ValidationError, match="1 of 2 not added") as err:  # an index of the caller's vectors
        vector_store.add([TextNode(id_="ok3", text="fine", embedding=emb), TextNode(id_="bare", text="no embedding")])
    assert "bare" in str(err.value) and "give it an embedding" in str(err.value)
    assert sorted(n.node_id for n in vector_store.get_nodes()) == ["ok1", "ok2", "ok3"]
