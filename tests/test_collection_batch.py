"""Hit vectors on request, batch get and batch search on the engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.results import hit_vector

from .conftest import text_items


class CountingEncoder(HashingEncoder):
    """The hashing encoder, counting its calls to encode queries and the queries it encoded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = self.queries = 0

    def encode_queries(self, batch: Any) -> Any:
        self.calls += 1
        self.queries += len(batch)
        return super().encode_queries(batch)


# -- hit vectors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "learned"])
def test_hit_vectors_are_the_stored_vectors_of_the_kind_found(engine: Engine, mode: str) -> None:
    engine.add(text_items(12))
    plain = engine.search("word3 thing", k=5, mode=mode)
    assert plain.vectors is None and all("vector" not in h for h in plain.to_dict()["hits"])
    result = engine.search("word3 thing", k=5, mode=mode, with_vectors=True)
    assert result.vectors is not None and len(result.vectors) == len(result.hits) == 5
    for (hit_id, _), source, vector in zip(result.hits, result.hits.provenance, result.vectors, strict=True):
        stored = engine.vectors(hit_id)
        assert vector is not None and np.array_equal(vector, hit_vector(stored, source, "any"))
    if mode == "dense":  # the score is the cosine with the vector returned
        query = engine.encode_query(Query(text="word3 thing"))
        scores = np.array([float(query @ v) for v in result.vectors if v is not None])
        np.testing.assert_allclose(scores, result.hits.scores, atol=1e-5)
    views = result.to_dict()["hits"]
    assert [len(h["vector"]) for h in views] == [engine.dim] * 5


def test_hit_vector_prefers_the_target_then_the_provenance_then_the_primary_vector() -> None:
    vectors = {"text": np.ones(2), "image": np.zeros(2), "combined": np.full(2, 0.5)}
    assert hit_vector(vectors, "dense:combined", "text") is vectors["text"]
    assert hit_vector(vectors, "dense:image", "any") is vectors["image"]
    assert hit_vector(vectors, "bm25", "any") is vectors["combined"]  # the primary vector
    assert hit_vector({}, "bm25", "any") is None


def test_search_by_vector_with_vectors(engine: Engine) -> None:
    engine.add(text_items(8))
    vector = engine.vectors("t2")["text"]
    result = engine.search_by_vector(vector, k=3, target="text", with_vectors=True)
    assert result.hits.ids[0] == "t2" and result.vectors is not None
    assert np.array_equal(result.vectors[0], vector)


# -- batch get ------------------------------------------------------------------------------------------


def test_get_many_reports_missing_ids_and_keeps_the_order(engine: Engine) -> None:
    engine.add(text_items(6))
    found = engine.get_many(["t4", "nope", "t1", "t4", "gone"])
    assert [item.id for item in found.items] == ["t4", "t1"] and found.missing == ("nope", "gone")
    assert found.vectors is None
    with_vectors = engine.get_many(["t1"], with_vectors=True)
    assert with_vectors.vectors is not None
    assert np.array_equal(with_vectors.vectors[0]["text"], engine.vectors("t1")["text"])
    assert engine.get_many([]).items == ()
    with pytest.raises(ValidationError, match=r"ids\[1\]"):
        engine.get_many(["t1", 7])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="ids"):
        engine.get_many("t1")


# -- batch search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["dense", "learned"])
def test_search_many_equals_single_searches(tmp_path: Any, mode: str) -> None:
    encoder = CountingEncoder()
    with Engine.open(tmp_path / "idx", encoder=encoder, index="exact") as engine:
        engine.add(text_items(40))
        queries: list[Query | str] = [
            "word1 thing",
            Query(text="item red", k=4, filters={"color": "red"}, mode=mode),
            Query(text="word5", k=3, offset=2, mode=mode),
            Query(text="item blue", k=5, target="text", mode=mode),
            Query(text="word2 thing", k=2, filters={"color": "red"}, mode=mode),
        ]
        singles = [engine.search(q, mode=mode) if isinstance(q, str) else engine.search(q) for q in queries]
        encoder.calls = encoder.queries = 0
        batch = engine.search_many(queries, mode=mode)
        assert (encoder.calls, encoder.queries) == (1, len(queries))  # one encoder call for the batch
        assert len(batch) == len(queries)
        for one, many in zip(singles, batch, strict=True):
            assert many.hits.ids.tolist() == one.hits.ids.tolist()
            np.testing.assert_allclose(many.hits.scores, one.hits.scores, rtol=1e-5)
            assert many.hits.provenance == one.hits.provenance and many.items == one.items


def test_search_many_groups_dense_queries_into_one_backend_call(engine: Engine, monkeypatch: Any) -> None:
    engine.add(text_items(20))
    calls: list[int] = []
    search = engine.backend.search

    def counted(queries: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(queries))
        return search(queries, *args, **kwargs)

    monkeypatch.setattr(engine.backend, "search", counted)
    queries = [Query(text=f"word{i} thing", k=1 + i % 3, mode="dense") for i in range(7)]
    queries.append(Query(text="item", mode="dense", filters={"color": "red"}))
    results = engine.search_many(queries, with_vectors=True)
    assert sorted(calls) == [1, 7]  # the seven unfiltered queries in one matrix search, the filtered one alone
    assert [len(r.hits) for r in results] == [1, 2, 3, 1, 2, 3, 1, 5]
    assert all(r.vectors is not None and len(r.vectors) == len(r.hits) for r in results)


def test_search_many_names_the_bad_query_before_any_work(engine: Engine) -> None:
    engine.add(text_items(5))
    with pytest.raises(ValidationError, match=r"queries\[1\]\.target"):
        engine.search_many(["item", Query(text="item", target="glyphs")])
    with pytest.raises(ValidationError, match=r"queries\[0\]\.mode"):
        engine.search_many([Query(text="item", mode="nope")])
    with pytest.raises(ValidationError, match=r"queries\[2\]\.query"):
        engine.search_many(["a", "b", "  "])
    assert engine.search_many([]) == []


def test_search_many_logs_each_query_when_asked(engine: Engine) -> None:
    engine.add(text_items(5))
    results = engine.search_many(["item", "thing"], log=True)
    assert all(r.query_id for r in results) and results[0].query_id != results[1].query_id
    engine.feedback(str(results[1].query_id), results[1].hits.ids[0])


def test_search_by_vectors_is_one_matrix_search(engine: Engine) -> None:
    engine.add(text_items(10))
    matrix = np.stack([engine.vectors(f"t{i}")["text"] for i in (3, 7)])
    results = engine.search_by_vectors(matrix, k=2, target="text", filters={"color": {"ne": "green"}})
    assert [r.hits.ids[0] for r in results] == ["t3", "t7"]
    singles = [engine.search_by_vector(v, k=2, target="text", filters={"color": {"ne": "green"}}) for v in matrix]
    assert [r.hits.ids.tolist() for r in results] == [r.hits.ids.tolist() for r in singles]
    assert engine.search_by_vectors(np.empty((0, engine.dim))) == []


D = 384  # the hashing encoder's dimension


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([[0.1] * D, [0.2] * (D - 1)], "vectors: is not a list of vectors"),
        ([[0.1] * 16, [0.2] * 16], rf"vectors\[0\]: has 16 dimensions, the index has {D}"),
        (
            [[0.1] * D, [0.2] * (D - 1) + [float("nan")]],
            rf"vectors\[1\]: has a NaN or infinite value at position {D - 1}",
        ),
        ([[0.1] * D, [float("inf")] * D], r"vectors\[1\]: has a NaN or infinite value at position 0"),
        ([[1e39] * D], r"vectors\[0\]: has a value beyond float32 at position 0"),
        ([0.1] * D, r"vectors: must be a list of vectors \(one row each\)"),
        ([["a"] * D], "vectors: is not a list of vectors"),
    ],
)
def test_bad_query_vectors_name_the_vector_and_position(engine: Engine, vectors: Any, message: str) -> None:
    engine.add(text_items(3))
    assert engine.dim == D
    with pytest.raises(ValidationError, match=message):
        engine.search_by_vectors(vectors)
