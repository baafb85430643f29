"""Cursor pagination, scroll and export on the engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from xmodal import Engine, Item, Query
from xmodal.cursor import CURSOR_TTL, Cursors, position_of
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.view import item_view

from .conftest import text_items


@pytest.mark.parametrize("mode", ["dense", "learned"])
def test_search_cursor_pages_are_the_offset_pages(engine: Engine, mode: str) -> None:
    engine.add(text_items(30))
    query = Query(text="item thing", k=7, filters={"color": {"ne": "black"}}, mode=mode)
    pages, cursor = [], None
    while True:
        result = engine.search(query, cursor=cursor)
        pages.append(result.hits.ids.tolist())
        cursor = result.next_cursor
        if cursor is None:
            break
        assert result.to_dict()["next_cursor"] == cursor
    by_offset = [engine.search(replace(query, offset=o)).hits.ids.tolist() for o in (0, 7, 14, 21)]
    assert pages == by_offset and [len(p) for p in pages] == [7, 7, 7, 2]  # 23 items are not black
    assert {i for page in pages for i in page} == {f"t{i}" for i in range(30) if i % 4 != 3}


def test_search_by_vector_cursor(engine: Engine) -> None:
    engine.add(text_items(12))
    vector = engine.vectors("t3")["text"]
    first = engine.search_by_vector(vector, k=5)
    second = engine.search_by_vector(vector, k=5, cursor=first.next_cursor)
    full = engine.search_by_vector(vector, k=10)
    assert first.hits.ids.tolist() + second.hits.ids.tolist() == full.hits.ids.tolist()
    with pytest.raises(ValidationError, match="cursor: was issued for another query"):
        engine.search_by_vector(engine.vectors("t4")["text"], k=5, cursor=first.next_cursor)
    batch = engine.search_by_vectors(np.stack([vector, vector]), k=5)
    assert [r.next_cursor is not None for r in batch] == [True, True]
    assert (
        engine.search_by_vector(vector, k=5, cursor=batch[1].next_cursor).hits.ids.tolist() == second.hits.ids.tolist()
    )


def test_bad_cursors_say_why(engine: Engine, tmp_path: Path) -> None:
    engine.add(text_items(20))
    first = engine.search("item thing", k=5, mode="dense")
    assert first.next_cursor is not None and position_of(first.next_cursor) == 5
    with pytest.raises(ValidationError, match="cursor: was issued for another query or filter"):
        engine.search("other words", k=5, mode="dense", cursor=first.next_cursor)
    with pytest.raises(ValidationError, match="another query"):  # the mode is part of the query
        engine.search("item thing", k=5, mode="learned", cursor=first.next_cursor)
    with pytest.raises(ValidationError, match="cursor: cannot be combined with an offset"):
        engine.search("item thing", k=5, mode="dense", offset=5, cursor=first.next_cursor)
    for damaged in (first.next_cursor[:-3], first.next_cursor[:10] + "A" + first.next_cursor[11:], "", "!!", 42):
        with pytest.raises(ValidationError, match="cursor: is not a cursor this index issued"):
            engine.search("item thing", k=5, mode="dense", cursor=damaged)  # type: ignore[arg-type]
    with Engine.open(tmp_path / "other", encoder=HashingEncoder(), index="exact") as other:
        other.add(text_items(20))
        with pytest.raises(ValidationError, match="cursor: was issued by another index"):
            other.search("item thing", k=5, mode="dense", cursor=first.next_cursor)
    stale = Cursors(engine.settings["id"], clock=lambda: 1000.0)
    old = stale.issue(_scope_of_search(engine, "item thing"), 5)
    with pytest.raises(ValidationError, match=r"cursor: has expired: issued [\d,]+ s ago, a cursor lasts 3,600 s"):
        engine.search("item thing", k=5, mode="dense", cursor=old)
    fresh = Cursors(engine.settings["id"], clock=lambda: __import__("time").time() - CURSOR_TTL + 60)
    resumed = engine.search(
        "item thing", k=5, mode="dense", cursor=fresh.issue(_scope_of_search(engine, "item thing"), 5)
    )
    assert resumed.hits.ids.tolist() == engine.search("item thing", k=5, mode="dense", offset=5).hits.ids.tolist()


def _scope_of_search(engine: Engine, text: str) -> str:
    from xmodal.cursor import search_scope

    return search_scope(Query(text=text, mode="dense"))


def test_the_index_id_is_kept_across_opens(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(12))
        index_id = engine.settings["id"]
        cursor = engine.search("item thing", k=5, mode="dense").next_cursor
    with Engine.open(tmp_path / "idx") as engine:
        assert engine.settings["id"] == index_id
        assert len(engine.search("item thing", k=5, mode="dense", cursor=cursor).hits) == 5


def test_the_last_page_has_no_cursor(engine: Engine) -> None:
    engine.add(text_items(5))
    assert engine.search("item", k=10, mode="dense").next_cursor is None
    assert engine.search("item", k=5, mode="dense").next_cursor is not None  # full: there may be more
    assert engine.search("item", k=5_000, mode="dense", offset=5_000).next_cursor is None  # MAX_K reached


# -- scroll ---------------------------------------------------------------------------------------------


def test_scroll_pages_every_matching_item_once_in_row_order(engine: Engine) -> None:
    engine.add(text_items(25))
    ids, cursor, sizes = [], None, []
    while True:
        page = engine.scroll({"color": {"ne": "red"}}, limit=6, cursor=cursor)
        ids += [item.id for item in page.items]
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [f"t{i}" for i in range(25) if i % 4 != 0]
    assert ids == expected and sizes == [6, 6, 6]  # 18 items are not red: no empty last page
    everything = engine.scroll(limit=100)
    assert [item.id for item in everything.items] == [f"t{i}" for i in range(25)] and everything.next_cursor is None
    assert engine.scroll({"nope": 1}).items == ()


def test_scroll_is_stable_across_writes_between_pages(engine: Engine) -> None:
    engine.add(text_items(10))
    first = engine.scroll(limit=4)
    assert [i.id for i in first.items] == ["t0", "t1", "t2", "t3"]
    engine.delete(["t4", "t1"])
    engine.add([Item.create("new", title="new item")])
    engine.update_attributes("t5", {"color": "gold"})  # a replaced item keeps its place
    rest, cursor = [], first.next_cursor
    while cursor is not None:
        page = engine.scroll(limit=4, cursor=cursor)
        rest += [i.id for i in page.items]
        cursor = page.next_cursor
    assert rest == ["t5", "t6", "t7", "t8", "t9", "new"]


def test_scroll_with_vectors_and_bad_input(engine: Engine) -> None:
    engine.add(text_items(3))
    page = engine.scroll(limit=2, with_vectors=True)
    assert page.vectors is not None and np.array_equal(page.vectors[1]["text"], engine.vectors("t1")["text"])
    for bad in (0, 10_001, 1.5, True):
        with pytest.raises(ValidationError, match="limit"):
            engine.scroll(limit=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cursor: was issued for another query or filter"):
        engine.scroll({"color": "red"}, cursor=page.next_cursor)
    with pytest.raises(ValidationError, match="nope"):
        engine.scroll({"nope": 1}, strict=True)


# -- export ---------------------------------------------------------------------------------------------


def test_export_jsonl(engine: Engine, tmp_path: Path) -> None:
    engine.add(text_items(12))
    engine.add([Item.create("nested", title="n", attributes={"meta": {"tags": ["a", None]}, "x": None})])
    report = engine.export(tmp_path / "all.jsonl")
    assert report.items == 13 and report.format == "jsonl"
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"t{i}" for i in range(12)] + ["nested"]
    assert lines[-1]["attributes"] == {"meta": {"tags": ["a", None]}, "x": None} and "vectors" not in lines[0]
    assert lines[3] == item_view(engine.get("t3"))  # the one item view
    red = engine.export(tmp_path / "red.ndjson", filters={"color": "red"}, with_vectors=True)
    rows = [json.loads(line) for line in (tmp_path / "red.ndjson").read_text().splitlines()]
    assert red.items == 3 and [r["id"] for r in rows] == ["t0", "t4", "t8"]
    np.testing.assert_allclose(rows[1]["vectors"]["text"], engine.vectors("t4")["text"], rtol=1e-6)


def test_export_refuses_a_path_that_exists_unless_forced(engine: Engine, tmp_path: Path) -> None:
    engine.add(text_items(4))
    path = tmp_path / "out.jsonl"
    path.write_text("keep me\n")
    with pytest.raises(ValidationError, match=r"path: '.*out.jsonl' exists \(choose another path, or pass force"):
        engine.export(path)
    assert path.read_text() == "keep me\n"
    assert engine.export(path, force=True).items == 4 and path.read_text().count("\n") == 4
    with pytest.raises(ValidationError, match="path: the extension '.csv' names no export format"):
        engine.export(tmp_path / "out.csv")
    with pytest.raises(ValidationError, match="format: unknown export format 'xml'"):
        engine.export(tmp_path / "out.jsonl2", format="xml")
    with pytest.raises(ValidationError, match="does not exist"):
        engine.export(tmp_path / "no" / "such" / "out.jsonl")
    with pytest.raises(ValidationError, match="is a folder"):
        engine.export(tmp_path, format="jsonl", force=True)
    assert engine.export(tmp_path / "data.txt", format="jsonl").items == 4
    with pytest.raises(ValidationError, match="nope"):
        engine.export(tmp_path / "strict.jsonl", filters={"nope": 1}, strict=True)
    assert not (tmp_path / "strict.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]  # no temporary file left behind


def test_export_parquet(engine: Engine, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    engine.add(text_items(9))
    engine.add([Item.create("seg", title="page", parent="t1", span=3, attributes={"deep": {"a": [1, 2]}})])
    report = engine.export(tmp_path / "all.parquet", with_vectors=True)
    assert report.items == 10 and report.format == "parquet"
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.column("id").to_pylist() == [f"t{i}" for i in range(9)] + ["seg"]
    assert json.loads(table.column("attributes").to_pylist()[-1]) == {"deep": {"a": [1, 2]}}
    assert table.column("parent").to_pylist()[-1] == "t1" and json.loads(table.column("span").to_pylist()[-1]) == {
        "page": 3
    }
    vectors = table.column("vector_text").to_pylist()
    np.testing.assert_allclose(vectors[2], engine.vectors("t2")["text"], rtol=1e-6)
    assert "vector_image" in table.column_names and table.column("vector_image").null_count == 10
    plain = engine.export(tmp_path / "plain.pq", filters={"color": "blue"})
    assert plain.items == 2 and not any(
        c.startswith("vector_") for c in pq.read_table(tmp_path / "plain.pq").column_names
    )
    empty = engine.export(tmp_path / "none.parquet", filters={"color": "gold"})
    assert empty.items == 0 and pq.read_table(tmp_path / "none.parquet").num_rows == 0


def test_export_jsonl_without_orjson_writes_the_same_records(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.add(text_items(5))
    engine.export(tmp_path / "fast.jsonl", with_vectors=True)
    monkeypatch.setitem(__import__("sys").modules, "orjson", None)  # as if not installed
    engine.export(tmp_path / "plain.jsonl", with_vectors=True)
    fast = [json.loads(line) for line in (tmp_path / "fast.jsonl").read_text().splitlines()]
    plain = [json.loads(line) for line in (tmp_path / "plain.jsonl").read_text().splitlines()]
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_array_equal(np.float32(a.pop("vectors")["text"]), np.float32(b.pop("vectors")["text"]))
        assert a == b


def test_an_index_without_an_id_gets_one_once(tmp_path: Path) -> None:
    from xmodal.store.sqlite import SQLiteStore

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(3))
    store = SQLiteStore(tmp_path / "idx" / "store.sqlite")
    settings = store.get_meta("settings")
    store.set_meta("settings", {k: v for k, v in settings.items() if k != "id"})  # as written before ids
    store.close()
    with Engine.open(tmp_path / "idx") as engine:
        given = engine.settings["id"]
        assert isinstance(given, str) and len(given) == 32
    with Engine.open(tmp_path / "idx") as engine:
        assert engine.settings["id"] == given
