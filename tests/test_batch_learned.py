"""Batch search in the learned (default) mode: the same results as the queries searched one by one, with
each batching strategy retrieving for every query in one call and the ranker scoring every query at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import StorageError
from xmodal.ltr.extension import pipeline
from xmodal.ltr.ranker import LambdaRanker
from xmodal.ltr.strategies import DenseStrategy
from xmodal.results import SearchResult

from .conftest import text_items

QUERIES = [
    Query(text="word1 thing"),
    Query(text="item red", k=4, filters={"color": "red"}),
    Query(text="word5", k=3, offset=2),
    Query(text="item blue", k=5, target="text"),
    Query(text="word1 thing", k=6),  # the first query's repeat key: a new round, seeing what it got
    Query(text="word2 thing", k=2, filters={"color": "red"}),
    Query(text="item 7 black", k=1),
    Query(text="zzzz unknownword"),
]


def _ranker(engine: Engine) -> LambdaRanker:
    """A small LambdaRank model over the pipeline's features (seeded data: relevance follows ``fused``)."""
    names = list(pipeline(engine).features)
    rng = np.random.default_rng(3)
    X = rng.random((80, len(names)))
    y = (X[:, names.index("fused")] + 0.3 * X[:, names.index("bm25")] > 0.8).astype(int)
    return LambdaRanker(n_estimators=10).fit(X, y, [10] * 8, feature_names=names)


def _same(one: SearchResult, many: SearchResult) -> None:
    assert many.hits.ids.tolist() == one.hits.ids.tolist()
    np.testing.assert_allclose(many.hits.scores, one.hits.scores, rtol=1e-6, atol=1e-7)
    assert many.hits.provenance == one.hits.provenance and many.items == one.items
    assert one.explain is not None and many.explain is not None
    for key in ("plan", "ranker", "weights", "strategies", "exploration"):
        assert many.explain[key] == one.explain[key], key
    assert [h.get("ranker") for h in many.explain["hits"]] == [h.get("ranker") for h in one.explain["hits"]]


@pytest.fixture
def learned(tmp_path: Any) -> Any:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        assert engine.default_mode == "learned"
        engine.add(text_items(60))
        yield engine


@pytest.mark.parametrize("ranked", [False, True])
def test_learned_batch_equals_one_by_one(learned: Engine, ranked: bool) -> None:
    pipe = pipeline(learned)
    if ranked:
        pipe.set_ranker(_ranker(learned), save=False)
    singles = [learned.search(q, explain=True) for q in QUERIES]
    pipe.start_over()  # the repeat memo as it was before the single searches
    batch = learned.search_many(QUERIES, explain=True)
    assert [r.explain["mode"] for r in batch if r.explain] == ["learned"] * len(QUERIES)
    assert ranked == all(isinstance(r.explain["hits"][0].get("ranker"), float) for r in batch if r.explain["hits"])
    for one, many in zip(singles, batch, strict=True):
        _same(one, many)
    assert len(batch[2].hits) == 3 and batch[6].hits.ids.tolist() == singles[6].hits.ids.tolist()


def test_learned_batch_is_one_dense_search_per_depth_and_one_ranker_call(learned: Engine, monkeypatch: Any) -> None:
    pipe = pipeline(learned)
    ranker = _ranker(learned)
    pipe.set_ranker(ranker, save=False)
    searches: list[int] = []
    scored: list[int] = []
    search, score = learned.backend.search, ranker.score

    def counted_search(queries: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        searches.append(len(queries))
        return search(queries, *args, **kwargs)

    def counted_score(X: np.ndarray) -> np.ndarray:
        scored.append(len(X))
        return score(X)

    monkeypatch.setattr(learned.backend, "search", counted_search)
    monkeypatch.setattr(ranker, "score", counted_score)
    queries = [Query(text=f"word{i} thing item {i}", k=5) for i in range(8)]
    results = learned.search_many(queries, explain=True)
    dense = {
        (a["strategy"], a["depth"])
        for r in results
        for a in (r.explain or {})["plan"]
        if str(a["strategy"]).startswith("dense")
    }
    backfilled = sum(1 for r in results for run in (r.explain or {})["strategies"].values() if run["backfill"])
    assert dense and len(searches) == len(dense) + backfilled < len(queries)
    assert sum(searches) == len(queries) + backfilled
    assert len(scored) == 1 and scored[0] >= sum(len(r.hits) for r in results)  # every query's head at once


def test_a_strategy_failing_for_the_batch_runs_alone_for_each_query(learned: Engine, monkeypatch: Any) -> None:
    singles = [learned.search(q, explain=True) for q in QUERIES]
    pipeline(learned).start_over()

    def broken(self: DenseStrategy, requests: Any) -> Any:
        raise StorageError("the vector index is being rebuilt")

    monkeypatch.setattr(DenseStrategy, "retrieve_many", broken)
    for one, many in zip(singles, learned.search_many(QUERIES, explain=True), strict=True):
        _same(one, many)
