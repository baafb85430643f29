"""The full-text index's BM25F as postings in memory (:mod:`xmodal.store.bm25_matrix`) scores and ranks exactly as
the index's own SQL over FTS5 does, and is rebuilt when the index changes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.ltr.extension import pipeline
from xmodal.store import bm25_matrix, termstats
from xmodal.store.analysis import terms
from xmodal.store.bm25_matrix import BM25Matrix, matrix_of
from xmodal.store.fulltext import FullText
from xmodal.store.sqlite import SQLiteStore

# inflected forms that share a stem ("runs", "running" -> "run"), words of one field only, and common words
WORDS = (
    "run runs running runner kettle kettles copper brass lamp lamps lighting light lights bright velvet "
    "curtain curtains cushion the of a and quickly quick wooden wood chair chairs table tables blue red"
).split()


def _catalog(rng: random.Random, n: int, start: int = 0) -> list[Item]:
    items = []
    for i in range(start, start + n):
        title = " ".join(rng.choice(WORDS[:20]) for _ in range(rng.randint(0, 4)))  # some titles empty
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))  # some bodies empty, some long
        body += "".join(f" r{rng.randrange(60)}" for _ in range(rng.randint(0, 3)))  # rare words (< 5% of rows)
        if not title and not body:
            title = "--"  # text without a term: a row of length 0
        items.append(Item.create(f"i{i}", title=title, text=body))
    return items


def _queries(rng: random.Random) -> list[list[str]]:
    out = [terms(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))) for _ in range(150)]
    # a rare word or two beside frequent ones: FullText.top skips the frequent terms' postings where it can
    out += [[*q, *(f"r{rng.randrange(70)}" for _ in range(rng.randint(1, 2)))] for q in out[:100]]
    out += [
        terms("running lamps"),  # stems shared with other forms
        terms("the the of"),  # frequent terms, repeated
        terms("zebra"),  # unknown
        terms("zebra kettle unicorn"),  # unknown and known
        [],
    ]
    return out


@pytest.fixture(autouse=True)
def _in_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's own answers here come from SQL, as before its postings were held in memory (those are
    compared with SQL by tests/test_postings.py)."""
    monkeypatch.setattr(termstats.TermStats, "scored", lambda *args, **kwargs: None)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    rng = random.Random(7)
    s = SQLiteStore(tmp_path / "store.sqlite")
    s.put([(item, {}) for item in _catalog(rng, 400)])
    s.delete([f"i{i}" for i in range(0, 400, 7)])  # deleted rows leave the index (and their terms' counts)
    s.put([(item, {}) for item in _catalog(rng, 30, start=3)])  # some items rewritten with other text
    return s


def _matrix(index: FullText) -> BM25Matrix:
    found = index.stats.held_texts(wait_s=30)
    assert found is not None, "the rows' terms were not held"
    return BM25Matrix(found[1], k1=index.k1, b=index.b, weights=index.weights, generation=found[0])


@pytest.mark.parametrize("weights", [(3.0, 1.0), (1.0, 1.0), (5.0, 0.5)])
def test_the_matrix_scores_every_row_as_fts5_does(store: SQLiteStore, weights: tuple[float, float]) -> None:
    index = store.fulltext
    assert isinstance(index, FullText)
    index.weights = weights  # what the matrix reads: the index's own field weights
    matrix = _matrix(index)
    assert len(matrix) == len(index) == 400 - len(range(0, 400, 7)) + sum(1 for i in range(3, 33) if i % 7 == 0)
    rng = random.Random(11)
    compared = 0
    for query in _queries(rng):
        expected = index.score(query)
        cols, scores = matrix.scores(query)
        got = dict(zip(matrix.rows[cols].tolist(), scores.tolist(), strict=True))
        assert got.keys() == expected.keys(), query
        for row, score in expected.items():
            assert got[row] == pytest.approx(score, rel=1e-9, abs=1e-12)
        compared += len(expected)
        for depth in (1, 5, 10, 1000):
            top = index.top(query, depth)  # FTS5 in SQL (skipping frequent terms where it can)
            mine = matrix.top(query, depth)
            assert [row for row, _ in mine] == [row for row, _ in top], (query, depth)
            np.testing.assert_allclose([s for _, s in mine], [s for _, s in top], rtol=1e-6, atol=1e-9)
    assert compared > 5000
    assert matrix.scores(["zebra"])[0].size == 0 and matrix.top([], 10) == []


def test_a_filter_ranks_only_the_allowed_rows(store: SQLiteStore) -> None:
    index = store.fulltext
    assert isinstance(index, FullText)
    matrix = _matrix(index)
    rng = random.Random(5)
    rows = matrix.rows.tolist()
    for query in _queries(rng)[:60]:
        allowed = set(rng.sample(rows, 40)) | {10**9}  # a row the index lacks allows nothing more
        expected = index.top(query, 10, allowed)
        mine = matrix.top(query, 10, matrix.allowed(sorted(allowed)))
        assert [r for r, _ in mine] == [r for r, _ in expected]
        np.testing.assert_allclose([s for _, s in mine], [s for _, s in expected], rtol=1e-6)
    assert not matrix.allowed(None).any()


def test_ties_are_broken_by_row_as_the_sql_does(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "store.sqlite")
    s.put([(Item.create(f"t{i}", title="same words", text=f"filler {i % 2}"), {}) for i in range(30)])
    index = s.fulltext
    assert isinstance(index, FullText)
    matrix = _matrix(index)
    for depth in (1, 3, 7, 30):
        assert matrix.top(terms("same"), depth) == index.top(terms("same"), depth)


def test_the_matrix_is_kept_until_the_index_changes(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(termstats, "RELOAD_AFTER_S", 0.0)  # the terms are read again at once once dropped
    index = store.fulltext
    assert isinstance(index, FullText)
    first = matrix_of(index)
    assert first is not None and matrix_of(index) is first  # nothing written: the same snapshot
    store.put([(Item.create("new", title="zebra", text="stripes"), {})])
    second = matrix_of(index)
    assert second is not None and second is not first  # a committed write: rebuilt
    assert [r for r, _ in second.top(["zebra"], 5)] == [r for r, _ in index.top(["zebra"], 5)] != []
    store.delete(["new"])
    third = matrix_of(index)
    assert third is not None and third.top(["zebra"], 5) == []
    bm25_matrix.release(index)
    fourth = matrix_of(index)
    assert fourth is not None and fourth is not third
    other = SQLiteStore(store.path)  # another connection's write (another process, say) is noticed too
    try:
        other.put([(Item.create("elsewhere", title="okapi"), {})])
    finally:
        other.close()
    fifth = matrix_of(index)
    assert fifth is not None and fifth is not fourth
    assert [r for r, _ in fifth.top(["okapi"], 5)] == [r for r, _ in index.top(["okapi"], 5)] != []


def test_no_matrix_where_the_terms_are_not_held(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    index = store.fulltext
    assert isinstance(index, FullText)
    monkeypatch.setattr(index.stats, "held_texts", lambda wait_s=0.0: None)  # e.g. an index over MAX_ROWS rows
    assert matrix_of(index) is None
    assert matrix_of(object()) is None  # type: ignore[arg-type]  # another kind of index


def test_lexical_batches_are_each_query_retrieved_alone(tmp_path: Path) -> None:
    """:meth:`LexicalStrategy.retrieve_many` (the matrix) answers each request as :meth:`retrieve` (SQL) does,
    filters included; so does the structured strategy's batch, whose BM25F of the allowed rows it shares."""
    rng = random.Random(3)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        items = _catalog(rng, 300)
        items = [
            Item.create(it.id, title=it.title, text=it.text, attributes={"shade": ("red", "blue", "green")[i % 3]})
            for i, it in enumerate(items)
        ]
        engine.add(items)
        engine.delete([f"i{i}" for i in range(0, 300, 11)])
        pipe = pipeline(engine)
        lexical = pipe.strategies["lexical"]
        assert lexical.matrix() is not None  # type: ignore[attr-defined]
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(80)]
        texts += ["zebra", "?!", "red lamps", "blue running chair", "green"]
        requests = [
            (Query(text=t, filters={"shade": "blue"} if i % 5 == 0 else {}), depth, None)
            for i, t in enumerate(texts)
            for depth in (3, 50)
        ]
        for name in ("lexical", "structured"):
            strategy = pipe.strategies[name]
            batch = strategy.retrieve_many(requests)  # type: ignore[attr-defined]
            assert sum(len(h) for h in batch) > 100
            for (query, depth, _), hits in zip(requests, batch, strict=True):
                alone = strategy.retrieve(query, depth)
                assert hits.ids.tolist() == alone.ids.tolist(), (name, query.text, depth)
                np.testing.assert_allclose(hits.scores, alone.scores, rtol=1e-6)


def test_top_rows_breaks_ties_at_the_cut_by_row() -> None:
    """Rows tied with the last one kept are kept by row, not as the partition happens to leave them."""
    from xmodal.ltr.strategies.base import top_rows

    scores = {row: (1.0 if row % 10 == 0 else 0.5) for row in range(200, 0, -1)}
    assert top_rows(scores, 25) == [(r, 1.0) for r in range(10, 201, 10)] + [(r, 0.5) for r in (1, 2, 3, 4, 5)]
