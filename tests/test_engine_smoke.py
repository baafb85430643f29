from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Item, Query, ValidationError

from .conftest import text_items


def test_add_search_get_delete(engine: Engine) -> None:
    report = engine.add(text_items(50))
    assert len(report.added) == 50 and not report.rejected
    res = engine.search("item 7 black")
    assert res.hits.ids[0] == "t7"
    assert engine.get("t7").attributes["color"] == "black"
    assert engine.delete(["t7", "nope"]) == 1
    assert "t7" not in engine.search("item 7 black", k=50).hits.ids.tolist()


def test_filter_before_cut(engine: Engine) -> None:
    engine.add(text_items(200))
    res = engine.search(Query(text="item", k=20, filters={"color": "red", "price": {"lt": 150}}))
    assert len(res.hits) == 20
    assert all(i.attributes["color"] == "red" and i.attributes["price"] < 150 for i in res.items)


def test_reopen_catches_up(tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "i", encoder="hashing", index="exact")
    eng.add(text_items(10))
    eng.close()
    eng = Engine.open(tmp_path / "i")
    eng.add(text_items(5, prefix="u"))  # not checkpointed: simulate a crash by not closing
    eng.store.close()
    eng = Engine.open(tmp_path / "i")
    assert len(eng) == 15 and eng.search("item 3", k=15).hits.ids.tolist().count("u3") == 1
    eng.close()


def test_image_item(engine: Engine, tmp_path: Path) -> None:
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "red.png")
    Image.new("RGB", (32, 32), (10, 10, 200)).save(tmp_path / "blue.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    items = [
        Item.create("r", image="red.png", title="red square"),
        Item.create("b", image="blue.png"),
        Item.create("x", image="bad.png"),
        Item.create("m", image="missing.png"),
    ]
    report = engine.add(items, base_dir=tmp_path)
    assert sorted(report.added) == ["b", "r"]
    assert {r.where for r in report.rejected} == {"x", "m"}
    res = engine.search(Query(image=str(tmp_path / "blue.png"), k=1))
    assert res.hits.ids[0] == "b"
    assert engine.info()["vectors"] == {"text": 1, "image": 2, "combined": 1}


def test_bad_queries(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="k"):
        Query(text="x", k=0)
    with pytest.raises(ValidationError, match="empty"):
        Query(text="  ")
    engine.add(text_items(3))
    with pytest.raises(ValidationError, match="filters.size"):
        engine.search(Query(text="x", filters={"size": 3}, strict=True))
    assert len(engine.search(Query(text="x", filters={"size": 3})).hits) == 0  # not strict: matches nothing
    with pytest.raises(ValidationError, match="filters.size.gt"):
        engine.search(Query(text="x", filters={"size": {"gt": "big"}}))
    with pytest.raises(ValidationError, match="dimensions"):
        engine.search_vector(np.ones(3))


def test_to_dict_keeps_hits_without_provenance(engine: Engine) -> None:
    from xmodal.records import Hits
    from xmodal.results import SearchResult

    engine.add(text_items(3))
    hits = Hits.of(["t1", "t2"], [0.9, 0.8])  # a mode may give no provenance
    result = SearchResult(hits, (engine.get("t1"), engine.get("t2")), 1.0, 0.5)
    assert [h["id"] for h in result.to_dict()["hits"]] == ["t1", "t2"]


def test_row_api_for_derived_indexes(engine: Engine) -> None:
    engine.add(text_items(20))
    row = engine.find_row("t3")
    assert row is not None and row == engine.row_of("t3") and engine.find_id(row) == "t3"
    assert len(engine.all_rows()) == 20 and row in engine.all_rows().tolist()
    assert engine.attributes_of(row)["color"] == engine.get("t3").attributes["color"]
    color = engine.get("t3").attributes["color"]
    matched = engine.match_rows({"color": color})
    assert matched is not None and row in matched.tolist() and engine.match_rows({}) is None
    with engine.attribute_table() as table:
        assert color in table.values("color")
    engine.delete(["t3"])
    assert engine.find_row("t3") is None and engine.find_id(row) is None and engine.attributes_of(row) == {}
    still = engine.match_rows({"color": color})
    assert row not in engine.all_rows().tolist() and still is not None and row not in still.tolist()
