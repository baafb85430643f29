"""The LangChain integration: LangChain's standard vector-store suite (sync and async), then what it skips."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests  # noqa: E402

from xmodal.encoders import Content, HashingEncoder  # noqa: E402
from xmodal.errors import ConfigError, ValidationError  # noqa: E402
from xmodal.integrations.langchain import XmodalVectorStore  # noqa: E402

# The suite's async tests run on pytest-asyncio (installed with langchain-tests); its sync tests get the mark too.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:.*marked with '@pytest.mark.asyncio' but it is not an async function"),
]


class TestStandardSuite(VectorStoreIntegrationTests):
    """LangChain's own ``VectorStoreIntegrationTests``, unchanged, on a fresh index per test."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:  # type: ignore[override]
        store = XmodalVectorStore(tmp_path / "idx", self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


# -- what the standard suite skips ------------------------------------------------------------------
class WordEmbeddings(Embeddings):
    """A real, deterministic embedding model for tests: xmodal's hashing encoder (words and trigrams), with
    ``embed_image`` from the image's pixels (as OpenCLIP's LangChain embeddings offer it). Counts its calls."""

    def __init__(self) -> None:
        self.encoder = HashingEncoder()
        self.calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("documents")
        return [list(map(float, v)) for v in self.encoder.encode_documents([Content(text=t) for t in texts])]

    def embed_query(self, text: str) -> list[float]:
        self.calls.append("query")
        return list(map(float, self.encoder.encode_queries([Content(text=text)])[0] * 3.0))  # not unit length

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("adocuments")
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        self.calls.append("aquery")
        return self.embed_query(text)

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        images = [Image.open(uri).convert("RGB") for uri in uris]
        return [list(map(float, v)) for v in self.encoder.encode_documents([Content(image=im) for im in images])]


DOCS = [
    (
        "apple",
        "red apples from the orchard",
        {"color": "red", "n": 1, "tags": ["fruit", "sweet"], "shop": {"city": "Oslo"}},
    ),
    ("sky", "a clear blue sky over the sea", {"color": "blue", "n": 2, "tags": ["sky"], "shop": {"city": "Rome"}}),
    ("grass", "green grass in the meadow", {"color": "green", "n": 3, "tags": [], "note": None}),
    ("coal", "black coal in a bucket", {"n": 4, "title": "Coal Mining Report"}),
    ("cherry", "red cherries and apples", {"color": "red", "n": 5.5, "tags": ["fruit"], "shop": {"city": "Oslo"}}),
]


@pytest.fixture
def emb() -> WordEmbeddings:
    return WordEmbeddings()


@pytest.fixture
def store(tmp_path: Path, emb: WordEmbeddings) -> Iterator[XmodalVectorStore]:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        vs.add_texts([t for _, t, _ in DOCS], [m for _, _, m in DOCS], ids=[i for i, _, _ in DOCS])
        yield vs


def ids_of(docs: list[Document]) -> list[str]:
    return [d.id or "" for d in docs]


FILTERS = [
    ({"color": "red"}, {"apple", "cherry"}),
    ({"color": {"$eq": "blue"}}, {"sky"}),
    ({"color": {"$ne": "red"}}, {"sky", "grass"}),  # xmodal's ne: the key must be there (docs/filters.md)
    ({"$not": {"color": "red"}}, {"sky", "grass", "coal"}),
    ({"n": {"$gt": 2}}, {"grass", "coal", "cherry"}),
    ({"n": {"$gte": 2, "$lt": 5}}, {"sky", "grass", "coal"}),
    ({"n": {"$lte": 1}}, {"apple"}),
    ({"n": {"$between": [2, 4]}}, {"sky", "grass", "coal"}),
    ({"color": {"$in": ["blue", "green"]}}, {"sky", "grass"}),
    ({"color": {"$nin": ["blue", "green"]}}, {"apple", "cherry"}),
    ({"tags": {"$contains": "fruit"}}, {"apple", "cherry"}),
    ({"tags": "sweet"}, {"apple"}),
    ({"tags": {"$in": ["sky", "sweet"]}}, {"apple", "sky"}),
    ({"note": {"$exists": True}}, {"grass"}),
    ({"color": {"$exists": False}}, {"coal"}),
    ({"title": {"$like": "%Mining%"}}, {"coal"}),
    ({"title": {"$ilike": "%mining%"}}, {"coal"}),
    ({"title": {"$like": "Coal Mining Report"}}, {"coal"}),
    ({"shop.city": "Oslo"}, {"apple", "cherry"}),
    ({"$and": [{"color": "red"}, {"n": {"$gt": 2}}]}, {"cherry"}),
    ({"$or": [{"color": "blue"}, {"n": {"$gte": 5}}]}, {"sky", "cherry"}),
    ({"$or": [{"$and": [{"color": "red"}, {"n": 1}]}, {"$not": {"n": {"$lt": 4}}}]}, {"apple", "coal", "cherry"}),
    ({"no_such_key": 1}, set()),  # a key no document has matches nothing (as in Chroma and Qdrant)
]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_langchain_filters_match_exactly_and_before_top_k(
    store: XmodalVectorStore, where: dict[str, Any], expected: set[str]
) -> None:
    found = store.similarity_search("apples", k=len(expected) or 1, filter=where)
    assert set(ids_of(found)) == expected  # k = the number that match: never short, never a non-match
    assert set(ids_of(store.similarity_search("sky", k=10, filter=where))) == expected


async def test_langchain_filters_async(store: XmodalVectorStore) -> None:
    found = await store.asimilarity_search("apples", k=10, filter={"color": "red"})
    assert set(ids_of(found)) == {"apple", "cherry"}
    scored = await store.asimilarity_search_with_score("apples", k=10, filter={"n": {"$gt": 3}})
    assert {d.id for d, _ in scored} == {"coal", "cherry"}


def test_bad_filters_name_the_field(store: XmodalVectorStore) -> None:
    with pytest.raises(ValidationError, match="filter"):
        store.similarity_search("x", filter=lambda doc: True)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="between"):
        store.similarity_search("x", filter={"n": {"$between": [1]}})
    with pytest.raises(ValidationError, match="like"):
        store.similarity_search("x", filter={"title": {"$like": "Coal%"}})
    with pytest.raises(ValidationError, match="bogus"):
        store.similarity_search("x", filter={"n": {"$bogus": 1}})
    with pytest.raises(ValidationError, match=r"\$and"):
        store.similarity_search("x", filter={"$and": {"n": 1}})


def test_scores_are_cosine_and_relevance_is_in_0_1(store: XmodalVectorStore, emb: WordEmbeddings) -> None:
    query = "red apples"
    scored = store.similarity_search_with_score(query, k=5)
    q = np.asarray(emb.embed_query(query))
    for doc, score in scored:
        d = np.asarray(emb.embed_documents([doc.page_content])[0])
        assert score == pytest.approx(float(q @ d / np.linalg.norm(q) / np.linalg.norm(d)), abs=1e-5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    relevant = store.similarity_search_with_relevance_scores(query, k=5)
    assert [d.id for d, _ in relevant] == [d.id for d, _ in scored]
    for (_, rel), (_, cos) in zip(relevant, scored, strict=True):
        assert 0.0 <= rel <= 1.0 and rel == pytest.approx((1 + cos) / 2, abs=1e-6)
    same = store.similarity_search_with_relevance_scores(DOCS[1][1], k=1)
    assert same[0][0].id == "sky" and same[0][1] == pytest.approx(1.0, abs=1e-5)
    opposite = store.similarity_search_by_vector((-np.asarray(emb.embed_documents([DOCS[1][1]])[0])).tolist(), k=5)
    assert opposite[-1].id == "sky"


def test_relevance_threshold_through_the_retriever(store: XmodalVectorStore) -> None:
    retriever = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.6, "k": 5}
    )
    found = retriever.invoke("red apples")
    assert found and all(d.metadata.get("color") == "red" for d in found)
    everything = store.similarity_search_with_relevance_scores("red apples", k=5)
    assert ids_of(found) == [d.id for d, r in everything if r >= 0.6]
    filtered = store.as_retriever(search_kwargs={"k": 5, "filter": {"color": "blue"}}).invoke("red apples")
    assert ids_of(filtered) == ["sky"]


def test_mmr_prefers_diverse_documents(tmp_path: Path, emb: WordEmbeddings) -> None:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        texts = ["red apple pie", "red apple pie!", "red apple pie recipe", "green apple tart", "blue sky"]
        vs.add_texts(texts, ids=["p1", "p2", "p3", "t", "s"])
        plain = ids_of(vs.similarity_search("red apple pie", k=2))
        assert set(plain) <= {"p1", "p2", "p3"}
        mmr = ids_of(vs.max_marginal_relevance_search("red apple pie", k=2, fetch_k=5, lambda_mult=0.3))
        assert mmr[0] in plain and mmr[1] not in {"p1", "p2", "p3"}  # the second is not a near-duplicate
        assert ids_of(vs.max_marginal_relevance_search("red apple pie", k=2, fetch_k=5, lambda_mult=1.0)) == plain
        only_blue = vs.max_marginal_relevance_search("red apple pie", k=3, filter={"$not": {"x": 1}}, fetch_k=2)
        assert len(only_blue) == 3  # fetch_k below k still gives k
        retriever = vs.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5, "lambda_mult": 0.3})
        assert ids_of(retriever.invoke("red apple pie")) == mmr


async def test_mmr_async(tmp_path: Path, emb: WordEmbeddings) -> None:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        await vs.aadd_texts(["red apple pie", "red apple pie!", "blue sky"], ids=["p1", "p2", "s"])
        found = await vs.amax_marginal_relevance_search("red apple pie", k=2, fetch_k=3, lambda_mult=0.2)
        assert ids_of(found)[1] == "s"
        assert "adocuments" in emb.calls and "aquery" in emb.calls  # the embedding's own async methods


METADATA_SHAPES: list[dict[str, Any]] = [
    {},
    {"none": None, "empty_list": [], "empty_obj": {}, "text": ""},
    {"nested": {"a": {"b": [1, 2.5, {"c": None}]}}, "list": ["x", 1, True, None]},
    {"parent": "p", "span": 3, "and": 1, "$weird": "ok", "dotted.key": "v"},  # names xmodal reserves at top level
    {"unicode": "naïve café ✓", "big": 2**53, "neg": -0.0},
]


@pytest.mark.parametrize("metadata", METADATA_SHAPES, ids=range(len(METADATA_SHAPES)))
def test_metadata_comes_back_exactly(tmp_path: Path, emb: WordEmbeddings, metadata: dict[str, Any]) -> None:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        vs.add_documents([Document(page_content="some text", metadata=metadata, id="d")])
        assert vs.get_by_ids(["d"])[0].metadata == metadata
        assert vs.similarity_search("some text", k=1)[0].metadata == metadata
    with XmodalVectorStore(tmp_path / "idx", emb) as reopened:
        assert reopened.get_by_ids(["d"]) == [Document(id="d", page_content="some text", metadata=metadata)]


def test_filters_on_nested_and_reserved_metadata_names(tmp_path: Path, emb: WordEmbeddings) -> None:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        vs.add_texts(["a", "b"], [{"parent": "p1", "meta": {"year": 2020}}, {"parent": "p2", "meta": {"year": 2024}}])
        assert [d.metadata["parent"] for d in vs.similarity_search("a", k=5, filter={"parent": "p2"})] == ["p2"]
        assert [d.metadata["parent"] for d in vs.similarity_search("a", k=5, filter={"meta.year": {"$lt": 2022}})] == [
            "p1"
        ]


def test_deletes(store: XmodalVectorStore) -> None:
    assert store.delete(["apple", "nope"]) is True
    assert store.get_by_ids(["apple", "sky"]) == [store.get_by_ids(["sky"])[0]]
    assert store.delete(filter={"color": "red"}) is True
    assert set(ids_of(store.similarity_search("x", k=10))) == {"sky", "grass", "coal"}
    with pytest.raises(ValidationError, match="clear"):
        store.delete()
    with pytest.raises(ValidationError, match="not both"):
        store.delete(["sky"], filter={"n": 2})
    assert store.clear() == 3
    assert store.similarity_search("x", k=10) == []
    assert store.engine is not None and store.engine.count() == 0


async def test_deletes_async(store: XmodalVectorStore) -> None:
    await store.adelete(filter={"tags": {"$contains": "fruit"}})
    assert set(ids_of(await store.asimilarity_search("x", k=10))) == {"sky", "grass", "coal"}
    await store.adelete(["sky"])
    assert await store.aget_by_ids(["sky", "grass"]) == store.get_by_ids(["grass"])


def test_last_of_a_repeated_id_wins_and_bad_documents_do_not_stop_the_others(store: XmodalVectorStore) -> None:
    ids = store.add_texts(["first", "second"], [{"v": 1}, {"v": 2}], ids=["dup", "dup"])
    assert ids == ["dup", "dup"] and store.get_by_ids(["dup"])[0].metadata == {"v": 2}
    with pytest.raises(ValidationError, match="2 of 3 not added") as err:
        store.add_texts(["good", "   ", "bad meta"], [{}, {}, {"when": object()}], ids=["g", "blank", "m"])
    assert "blank" in str(err.value) and "metadata.when" in str(err.value)
    assert ids_of(store.get_by_ids(["g", "blank", "m"])) == ["g"]
    with pytest.raises(ValidationError, match="metadatas"):
        store.add_texts(["a", "b"], [{}])


def test_caller_vectors_are_kept_and_nothing_is_encoded(store: XmodalVectorStore, emb: WordEmbeddings) -> None:
    engine = store.engine
    assert engine is not None and engine.encoder.config()["name"] == "caller"
    stored = engine.vectors("sky")["text"]
    mine = np.asarray(emb.embed_documents([DOCS[1][1]])[0])
    assert np.allclose(stored, mine / np.linalg.norm(mine), atol=1e-6)
    with pytest.raises(ValidationError, match="come from the caller"):
        engine.search("sky", mode="dense")


def test_reopen_keeps_documents_and_checks_the_dimension(tmp_path: Path, emb: WordEmbeddings) -> None:
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        assert vs.engine is None and vs.similarity_search("x") == []  # created at the first add
        vs.add_texts(["hello world"], ids=["h"])
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        assert ids_of(vs.similarity_search("hello", k=3)) == ["h"]
    with XmodalVectorStore(tmp_path / "idx", DeterministicFakeEmbedding(size=8)) as other:
        with pytest.raises(ValidationError, match="dimensions"):
            other.add_texts(["x"])
        assert ids_of(other.get_by_ids(["h"])) == ["h"]
    with pytest.raises(ConfigError, match="closed"):
        other.similarity_search("hello")
    other.close()  # a second close does nothing


def test_from_texts_and_from_documents(tmp_path: Path, emb: WordEmbeddings) -> None:
    vs = XmodalVectorStore.from_texts(
        ["alpha beta", "gamma"], emb, [{"k": 1}, {"k": 2}], ids=["a", "g"], path=tmp_path / "i1"
    )
    assert ids_of(vs.similarity_search("alpha", k=1)) == ["a"]
    vs.close()
    docs = [Document(page_content="delta", metadata={"k": 3}, id="d")]
    vs2 = XmodalVectorStore.from_documents(docs, emb, path=tmp_path / "i2")
    assert vs2.get_by_ids(["d"]) == docs
    vs2.close()
    with pytest.raises(ConfigError, match="path"):
        XmodalVectorStore.from_texts(["x"], emb)


def test_xmodal_encoder_when_no_embedding_is_given(tmp_path: Path) -> None:
    with XmodalVectorStore(tmp_path / "idx", encoder="hashing") as vs:
        vs.add_texts(["red apples from the orchard", "a clear blue sky"], [{"c": "r"}, {"c": "b"}], ids=["a", "s"])
        assert ids_of(vs.similarity_search("apples orchard", k=2)) == ["a", "s"]
        assert ids_of(vs.similarity_search("apples orchard", k=2, filter={"c": "b"})) == ["s"]
        assert vs.engine is not None and vs.engine.encoder.config()["name"] == "hashing"
        mmr = vs.max_marginal_relevance_search("apples", k=2, fetch_k=2)
        assert set(ids_of(mmr)) == {"a", "s"}


def photo(path: Path, color: tuple[int, int, int], stripe: bool = False) -> str:
    array = np.zeros((32, 32, 3), dtype=np.uint8) + np.array(color, dtype=np.uint8)
    if stripe:
        array[::4] = 255 - array[::4]
    Image.fromarray(array).save(path)
    return str(path)


def test_add_images_with_the_embeddings_image_model(tmp_path: Path, emb: WordEmbeddings) -> None:
    uris = [photo(tmp_path / "red.png", (200, 20, 20)), photo(tmp_path / "blue.png", (20, 20, 200), stripe=True)]
    with XmodalVectorStore(tmp_path / "idx", emb) as vs:
        ids = vs.add_images(uris, [{"name": "red"}, {"name": "blue"}], ids=["r", "b"])
        assert ids == ["r", "b"]
        engine = vs.engine
        assert engine is not None and engine.get("r").modality == "image"
        mine = np.asarray(emb.embed_image([uris[1]])[0])
        assert np.allclose(engine.vectors("b")["image"], mine / np.linalg.norm(mine), atol=1e-6)
        found = vs.similarity_search_by_vector(mine.tolist(), k=2)
        assert ids_of(found) == ["b", "r"] and found[0].metadata == {"name": "blue"}
        assert base64.b64decode(found[0].page_content) == Path(uris[1]).read_bytes()  # the image, as Chroma gives it
        Path(uris[1]).unlink()  # the index keeps its own copy
        assert (
            base64.b64decode(vs.get_by_ids(["b"])[0].page_content)
            == engine.media.path(str(engine.get("b").image)).read_bytes()
        )


def test_add_images_through_xmodal_encoder_and_refused_without_embed_image(tmp_path: Path) -> None:
    uris = [photo(tmp_path / "red.png", (200, 20, 20)), photo(tmp_path / "blue.png", (20, 20, 200))]
    with XmodalVectorStore(tmp_path / "idx", encoder="hashing") as vs:
        vs.add_images(uris, ids=["r", "b"])
        engine = vs.engine
        assert engine is not None
        query = engine.encoder.encode_queries([Content(image=Image.open(uris[0]).convert("RGB"))])[0]
        assert ids_of(vs.similarity_search_by_vector(query.tolist(), k=2)) == ["r", "b"]
        with pytest.raises(ValidationError, match="1 of 2 not added") as err:
            vs.add_images([str(tmp_path / "missing.png"), uris[1]], ids=["m", "b2"])
        assert "missing.png" in str(err.value) and ids_of(vs.get_by_ids(["m", "b2"])) == ["b2"]
    with XmodalVectorStore(tmp_path / "idx2", DeterministicFakeEmbedding(size=6)) as plain:
        with pytest.raises(ValidationError, match="embed_image"):
            plain.add_images(uris)


async def test_concurrent_async_searches(store: XmodalVectorStore) -> None:
    results = await asyncio.gather(*(store.asimilarity_search(t, k=1) for _, t, _ in DOCS))
    assert [ids_of(r) for r in results] == [[i] for i, _, _ in DOCS]


@pytest.mark.slow
def test_images_and_text_in_one_space_with_xmodals_offline_encoder(tmp_path: Path) -> None:
    """Without an embedding, add_images goes through xmodal's image path and its real crossmodal encoder."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite_pytorch")
    skdata = pytest.importorskip("skimage.data")
    uris = []
    for name in ("chelsea", "coffee", "rocket", "horse"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(tmp_path / f"{name}.jpg")
        uris.append(str(tmp_path / f"{name}.jpg"))
    with XmodalVectorStore(tmp_path / "idx", encoder="offline") as vs:
        vs.add_images(uris, [{"name": Path(u).stem} for u in uris], ids=[Path(u).stem for u in uris])
        vs.add_texts(["a recipe for tomato soup"], ids=["soup"])
        assert vs.similarity_search("a cat", k=1)[0].metadata == {"name": "chelsea"}
        assert vs.similarity_search("a rocket launch", k=1, filter={"name": {"$exists": True}})[0].id == "rocket"
        assert ids_of(vs.similarity_search("a cup of coffee", k=2, filter={"name": {"$ne": "coffee"}}))[0] != "coffee"
