"""The ``Store`` conformance suite: every store (SQLite, PostgreSQL) passes the same assertions.

Each test gets ``open_store``: it opens (or, called again, reopens) one fresh store of the parametrised kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Item, ValidationError
from xmodal.records import Span
from xmodal.store.analysis import terms
from xmodal.store.base import Store

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    opened: list[Store] = []

    if request.param == "sqlite":
        from xmodal.store.sqlite import SQLiteStore

        def make() -> Store:
            return SQLiteStore(tmp_path / "store.sqlite")
    else:
        server = request.getfixturevalue("postgres_server")
        schema = request.getfixturevalue("postgres_schema")
        from xmodal.store.postgres import PostgresStore

        def make() -> Store:
            return PostgresStore(server.url, schema)

    def opener() -> Store:
        store = make()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def vec(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(item_id: str, seed: int, **fields: Any) -> tuple[Item, dict[str, np.ndarray]]:
    fields.setdefault("title", f"item {item_id}")
    return Item.create(item_id, **fields), {"text": vec(seed), "image": vec(seed + 1000)}


def test_is_a_store(open_store: OpenStore) -> None:
    store = open_store()
    assert isinstance(store, Store)
    assert store.count() == 0 and store.last_seq() == 0 and store.changes_since(0) == []
    assert store.integrity() == [] and store.integrity(full=True) == []


def test_put_get_and_upsert_keeps_row(open_store: OpenStore) -> None:
    store = open_store()
    rows = store.put([entry("a", 1, title="first", attributes={"color": "red"}), entry("b", 2, title="two")])
    assert len(set(rows)) == 2 and rows == sorted(rows)
    got = store.get("a")
    assert got is not None and got.row == rows[0] and got.item.title == "first"
    assert got.item.attributes == {"color": "red"}
    np.testing.assert_array_equal(got.vectors["text"], vec(1))
    np.testing.assert_array_equal(got.vectors["image"], vec(1001))
    created = got.item.created_at
    again = Item.create("a", title="second")
    assert store.put([(again, {"text": vec(5)})]) == [rows[0]]  # a replaced item keeps its row
    got = store.get("a")
    assert got is not None and got.item.title == "second" and set(got.vectors) == {"text"}
    assert got.item.created_at == again.created_at or got.item.created_at >= created
    assert store.count() == 2 and store.get("missing") is None


def test_reads_by_row(open_store: OpenStore) -> None:
    store = open_store()
    rows = store.put([entry(f"i{i}", i, title=f"item {i}", modality="text") for i in range(5)])
    found = store.get_rows([rows[1], rows[3], 10_000])
    assert sorted(found) == [rows[1], rows[3]] and found[rows[1]].item.id == "i1"
    assert found[rows[1]].vectors == {}  # without vectors unless asked
    with_vectors = store.get_rows([rows[2]], with_vectors=True)
    np.testing.assert_array_equal(with_vectors[rows[2]].vectors["text"], vec(2))
    meta = store.item_meta([rows[0], 99_999])
    assert list(meta) == [rows[0]] and meta[rows[0]][1] == "text"
    texts = store.item_texts([rows[4], rows[0], 99_999])  # title and text alone, as get_rows reads them
    assert texts == {r: (found.item.title, found.item.text) for r, found in store.get_rows([rows[0], rows[4]]).items()}
    assert texts[rows[4]][0] == "item 4"
    assert [s.item.id for s in store.iter_all(batch=2)] == [f"i{i}" for i in range(5)]
    assert store.counts_by_modality() == {"text": 5}
    vector_rows = store.vector_rows()
    assert set(vector_rows) == {"text", "image"} and vector_rows["text"].tolist() == rows


def test_catalog_rows_and_segments(open_store: OpenStore) -> None:
    store = open_store()
    parent = entry("doc", 1, title="a document", attributes={"lang": "en"})
    page = Item.create("doc#1", title="page one", parent="doc", span=Span(page=1), attributes={"lang": "en"})
    sub = Item.create("doc#1.1", title="a chunk", parent="doc#1")
    rows = store.put([parent, (page, {"text": vec(2)}), (sub, {"text": vec(3)})])
    catalog = store.catalog_rows()
    assert catalog.ids == ["doc", "doc#1", "doc#1.1"] and catalog.rows == rows
    assert catalog.decode(catalog.fields[0]) == {"lang": "en"}
    fields = catalog.decode(catalog.fields[1])
    assert fields["parent"] == "doc" and fields["lang"] == "en" and "span" in fields
    assert store.segment_counts_by_modality() == {"text": 2}
    got = store.get("doc#1")
    assert got is not None and got.item.parent == "doc" and got.item.span == Span(page=1)
    deleted, existed = store.delete_tree(["doc", "nope"])
    assert sorted(deleted) == sorted(rows) and existed == 1 and store.count() == 0
    assert store.catalog_rows().ids == [] and store.vector_rows() == {}


def test_change_log(open_store: OpenStore) -> None:
    store = open_store()
    rows = store.put([entry("a", 1), entry("b", 2)])
    first = store.last_seq()
    store.put([entry("a", 3)])
    assert store.delete(["b"]) == [rows[1]]
    assert store.delete(["b"]) == []  # already gone: nothing deleted, nothing logged
    assert store.changes_since(0) == [(rows[0], "put"), (rows[1], "put"), (rows[0], "put"), (rows[1], "delete")]
    assert store.changes_since(first) == [(rows[0], "put"), (rows[1], "delete")]
    assert store.last_seq() > first and store.changes_since(store.last_seq()) == []


def test_settings(open_store: OpenStore) -> None:
    store = open_store()
    assert store.get_meta("nothing") is None
    value = {"dim": 8, "names": ["a", "b"], "nested": {"x": 1.5, "none": None}}
    store.set_meta("settings", value)
    store.set_meta("count", 3)
    store.set_meta("count", 4)
    assert store.get_meta("settings") == value and store.get_meta("count") == 4
    assert store.last_seq() == 0  # settings are not item changes


def test_survives_reopen(open_store: OpenStore) -> None:
    store = open_store()
    rows = store.put([entry("a", 1, title="kept"), entry("b", 2)])
    store.set_meta("k", [1, 2])
    seq = store.last_seq()
    store.close()
    again = open_store()
    assert again.count() == 2 and again.get_meta("k") == [1, 2] and again.last_seq() == seq
    got = again.get("a")
    assert got is not None and got.row == rows[0] and got.item.title == "kept"
    assert again.put([entry("c", 3)])[0] > rows[1]  # rows are never reused


def test_a_bad_vector_kind_writes_nothing(open_store: OpenStore) -> None:
    store = open_store()
    store.put([entry("a", 1)])
    seq = store.last_seq()
    with pytest.raises(ValidationError, match="vector kind"):
        store.put([entry("b", 2), (Item.create("c", title="c"), {"no spaces allowed": vec(3)})])
    assert store.count() == 1 and store.get("b") is None and store.last_seq() == seq


def test_fulltext(open_store: OpenStore) -> None:
    store = open_store()
    rows = store.put(
        [
            entry("a", 1, title="red coffee cup", text="a cup for coffee"),
            entry("b", 2, title="blue teapot", text="a pot for tea, not coffee"),
            entry("c", 3, title="green bottle", text="water"),
        ]
    )
    index = store.fulltext
    assert len(index) == 3
    coffee = terms("coffee cup")
    top = index.top(coffee, 10)
    assert [row for row, _ in top] == [rows[0], rows[1]] and top[0][1] > top[1][1] > 0
    assert index.top(coffee, 10, allowed={rows[1], rows[2]}) == [top[1]]
    assert index.score(coffee) == pytest.approx(dict(top))
    np.testing.assert_allclose(index.score_rows(coffee, [rows[2], rows[0], -1]), [0.0, top[0][1], 0.0])
    assert index.known_fraction(terms("coffee zebra")) == 0.5
    assert index.frequencies(terms("coffee zebra cup coffee")) == {"coffe": 2, "cup": 1}
    store.delete(["a"])
    assert len(index) == 2 and [row for row, _ in index.top(coffee, 10)] == [rows[1]]
    store.put([entry("b", 2, title="green tea", text="leaves")])  # re-indexed in place
    assert index.top(terms("coffee"), 10) == [] and [r for r, _ in index.top(terms("green"), 10)] == [
        rows[1],
        rows[2],
    ]  # a tie: by row
