"""The engine's catalog (:mod:`xmodal.catalog`) opens without parsing any item's attributes and builds its
attribute table on the first filter: the lazy table equals a row-by-row build, follows writes made before
and after it is built, and concurrent first filters build it once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_catalog import png_bytes
from xmodal import Engine, Item, Query
from xmodal.catalog import Catalog
from xmodal.encoders import HashingEncoder
from xmodal.filters import AttributeTable, FilterExpr
from xmodal.store import sqlite as sqlite_store
from xmodal.store.sqlite import SQLiteStore

COLORS = ["red", "green", "blue"]
FILTERS: list[dict[str, Any]] = [
    {"color": "red"},
    {"color": ["green", "blue"], "price": {"gte": 3}},
    {"sale": True},
    {"size": 2},
    {"parent": "doc"},
    {"span": {"gte": 2, "lt": 4}},
    {"span": {"gte": 15}},
]


def items() -> list[Item]:
    """Shared and unique attribute sets, numbers, booleans, and segments (page and seconds spans)."""
    out = [
        Item.create(
            f"i{i}",
            title=f"thing {i}",
            attributes={"color": COLORS[i % 3], "price": i % 7, "sale": i % 2 == 0, **({"size": i} if i % 5 else {})},
        )
        for i in range(40)
    ]
    out += [Item.create(f"same{i}", title=f"same {i}", attributes={"color": "blue", "price": 1}) for i in range(10)]
    out.append(Item.create("doc", title="a document", attributes={"color": "red"}))
    out += [
        Item.create(f"doc#p{p}", text=f"page {p}", parent="doc", span=p, attributes={"color": "red"}) for p in (1, 2, 3)
    ]
    out += [
        Item.create(f"clip{s}", text="a clip", parent="doc", span={"start": 10.0 * s, "end": 10.0 * s + 5})
        for s in (1, 2)
    ]
    return out


def row_by_row(catalog: Catalog) -> AttributeTable:
    """The table built the way the catalog used to build it: one row at a time, in the catalog's order."""
    table = AttributeTable()
    for row in catalog.id_by_row:
        table.add(row, catalog.attributes_of(row))
    return table


def open_engine(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact")


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """An index of :func:`items` with some items replaced and one deleted, closed."""
    with open_engine(tmp_path / "idx") as engine:
        engine.add(items())
        engine.add([Item.create("i3", title="thing 3", attributes={"color": "blue", "price": 9})])
        engine.delete(["i4"])
    return tmp_path / "idx"


def test_open_decodes_no_attributes_and_a_dense_search_none(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = sqlite_store.decode_filter_fields

    def counting(encoded: str) -> dict[str, Any]:
        decoded.append(encoded)
        return real(encoded)

    monkeypatch.setattr(sqlite_store, "decode_filter_fields", counting)
    with open_engine(index) as engine:
        assert decoded == [] and len(engine) == 55
        assert len(engine.search(Query(text="thing", k=5, mode="dense")).hits) == 5
        assert decoded == []
        engine.search(Query(text="thing", k=5, mode="dense", filters={"color": "red"}))
        assert decoded and len(decoded) == len(set(decoded)) < 55  # the table: each distinct encoding once


def test_loaded_catalog_equals_the_items_and_a_row_by_row_table(index: Path) -> None:
    store = SQLiteStore(index / "store.sqlite")
    try:
        catalog = Catalog.load(store)
        for stored in store.iter_all():
            assert catalog.attributes_of(stored.row) == stored.item.filter_fields()
            assert catalog.id_by_row[stored.row] == stored.item.id and catalog.row_by_id[stored.item.id] == stored.row
        assert catalog.attributes_of(10_000) == {}
        assert catalog.rows().tolist() == sorted(catalog.id_by_row)
        expected = row_by_row(catalog)
        assert catalog.attributes.attributes() == expected.attributes()
        for name in expected.attributes():
            assert list(catalog.attributes.values(name).items()) == list(expected.values(name).items())  # order too
        for filters in FILTERS:
            assert catalog.attributes.match(filters).tolist() == expected.match(filters).tolist()
    finally:
        store.close()


def filtered_ids(engine: Engine) -> list[list[str]]:
    """The ids each of :data:`FILTERS` finds (dense, all of them), sorted."""
    return [
        sorted(engine.search(Query(text="thing page clip", k=100, mode="dense", filters=f)).hits.ids.tolist())
        for f in FILTERS
    ]


def test_filters_right_after_open_match_the_writing_process(tmp_path: Path) -> None:
    with open_engine(tmp_path / "idx") as engine:
        engine.add(items())
        engine.search(Query(text="thing", mode="dense", filters={"color": "red"}))  # built in the writer
        engine.add([Item.create("i7", title="thing 7", attributes={"color": "green", "price": 1})])
        engine.delete(["doc#p2", "i8"])
        before = filtered_ids(engine)
    with open_engine(tmp_path / "idx") as engine:
        assert filtered_ids(engine) == before
        assert [engine.attributes_of(engine.row_of(i)) for i in ("i7", "doc#p3")] == [
            {"color": "green", "price": 1},
            {"color": "red", "parent": "doc", "span": 3.0},
        ]


def test_writes_before_the_first_filter_are_in_the_table(index: Path) -> None:
    with open_engine(index) as engine:
        engine.add([Item.create("i0", title="thing 0", attributes={"color": "green", "price": 100})])  # replaced
        engine.add([Item.create("new", title="thing new", attributes={"color": "red", "size": 2})])
        engine.delete(["i1", "doc#p1"])
        found = filtered_ids(engine)
        with engine.attribute_table() as table:
            assert table.values("price")[100.0] == 1
            assert table.values("color")["green"] == 12  # 13, less i4 and i1, plus i0
    with open_engine(index) as engine:  # a fresh build from the store agrees
        assert filtered_ids(engine) == found
    assert "new" in found[0] and "i0" not in found[0] and "i0" in found[1] and "doc#p1" not in found[4]


def test_writes_after_the_first_filter_keep_the_table_in_step(index: Path) -> None:
    with open_engine(index) as engine:
        assert engine.match_rows({"color": "red"}) is not None  # built now
        engine.add([Item.create("i0", title="thing 0", attributes={"color": "green", "price": 100})])
        engine.delete(["i1", "doc#p1"])
        found = filtered_ids(engine)
    with open_engine(index) as engine:
        assert filtered_ids(engine) == found


def test_concurrent_first_filters_build_the_table_once(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(index / "store.sqlite")
    try:
        catalog = Catalog.load(store)
    finally:
        store.close()
    builds: list[int] = []
    real = Catalog._build_table

    def slow_build(self: Catalog) -> AttributeTable:
        builds.append(threading.get_ident())
        time.sleep(0.05)  # every thread arrives while the first one builds
        return real(self)

    monkeypatch.setattr(Catalog, "_build_table", slow_build)
    where = FilterExpr.parse({"color": "red", "price": {"lt": 5}})
    assert where is not None
    start = threading.Barrier(8)
    results: list[np.ndarray] = []

    def first_filter() -> None:
        start.wait()
        results.append(catalog.match_expr(where))

    threads = [threading.Thread(target=first_filter) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 8
    assert all(r.tolist() == results[0].tolist() for r in results) and len(results[0]) > 0
    assert results[0].tolist() == row_by_row(catalog).match({"color": "red", "price": {"lt": 5}}).tolist()


def test_an_empty_catalog_follows_puts_and_deletes(tmp_path: Path) -> None:
    catalog = Catalog()
    assert len(catalog) == 0 and catalog.attributes.attributes() == []
    with open_engine(tmp_path / "idx") as engine:
        engine.add(items()[:3])
        stored = list(engine.iter_items())
    catalog.on_put(stored)
    catalog.on_delete([stored[0].row])
    assert catalog.attributes.match({"color": ["red", "green", "blue"]}).tolist() == [s.row for s in stored[1:]]


def test_item_meta_is_held_in_memory_and_follows_writes(tmp_path: Path) -> None:
    """The ranker's freshness and modality features read (creation time, modality) alone, per row."""
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        engine.add([Item.create("a", title="lamp", created_at=100.0), Item.create("b", title="desk", created_at=200.0)])
        row_a, row_b = (engine.store.get(i).row for i in ("a", "b"))  # type: ignore[union-attr]
        assert engine.item_meta([row_a, row_b, 999]) == {row_a: (100.0, "text"), row_b: (200.0, "text")}
        engine.add([Item.create("b", title="desk", image=png_bytes())])  # replaced: same row, new modality
        assert engine.item_meta([row_b])[row_b][1] == "image+text"
        engine.delete(["a"])
        assert engine.item_meta([row_a]) == {}
        before = engine.item_meta([row_b])
    with Engine.open(tmp_path / "idx") as engine:
        assert engine.item_meta([row_a, row_b]) == before
