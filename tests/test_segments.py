"""Segments: an item with a ``parent`` and a ``span`` round-trips through the API, the CLI and the REST API;
filters take ``parent`` and ``span``; deleting a parent deletes its segments (in every follower); a search
grouped by parent returns one best hit per parent; a version-2 store upgrades in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.test_third_party import cli
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.records import Span
from xmodal.store.sqlite import SCHEMA_VERSION, SQLiteStore

WRITER = "write-key-0001"


def doc_items() -> list[Item]:
    """Two documents with pages, a video with clips, and a whole item."""
    items = [Item.create("doc1", title="red guide"), Item.create("doc2", title="blue guide")]
    items += [Item.create(f"doc1#p{p}", text=f"red red red page {p}", parent="doc1", span=p) for p in range(1, 9)]
    items += [Item.create("doc2#p1", text="red and blue page", parent="doc2", span={"page": 1})]
    items += [
        Item.create(f"v1#{i}", text=f"red clip {i}", parent="v1", span={"start": 10.0 * i, "end": 10.0 * i + 10})
        for i in range(3)
    ]
    items += [Item.create("lone", title="red lone item")]
    return items


def open_engine(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact", extensions=[])


def test_parent_and_span_round_trip_and_validate(tmp_path: Path) -> None:
    with open_engine(tmp_path / "idx") as engine:
        engine.add(doc_items())
        page = engine.get("doc1#p3")
        assert page.parent == "doc1" and page.span == Span(page=3) and engine.get("doc1").parent is None
        clip = engine.get("v1#2")
        assert clip.span == Span(start=20.0, end=30.0) and clip.span.to_dict() == {"start": 20.0, "end": 30.0}
    with open_engine(tmp_path / "idx") as engine:  # from the store again
        assert engine.get("doc1#p3").span == Span(page=3)
    for bad, field in (
        ({"span": {"page": -1}}, "span.page"),
        ({"span": {"start": 5, "end": 2}}, "span.end"),
        ({"span": "p3"}, "span"),
        ({"parent": "x"}, "parent"),  # the item itself
        ({"attributes": {"parent": "doc1"}}, "attributes.parent"),
    ):
        with pytest.raises(ValidationError, match=field):
            Item.create("x", title="t", **bad)  # type: ignore[arg-type]


def test_filters_take_parent_and_span(tmp_path: Path) -> None:
    with open_engine(tmp_path / "idx") as engine:
        engine.add(doc_items())
        hits = engine.search(Query(text="red", k=50, filters={"parent": "doc1"}, mode="dense")).hits.ids.tolist()
        assert sorted(hits) == sorted(f"doc1#p{p}" for p in range(1, 9))
        pages = engine.search(Query(text="red", k=50, filters={"parent": "doc1", "span": {"gte": 3, "lt": 5}}))
        assert sorted(pages.hits.ids.tolist()) == ["doc1#p3", "doc1#p4"]
        clips = engine.search(Query(text="red", k=50, filters={"parent": ["v1"], "span": {"gte": 10}}, mode="dense"))
        assert sorted(clips.hits.ids.tolist()) == ["v1#1", "v1#2"]
        assert engine.search(Query(text="red", k=5, filters={"span": 2}, mode="dense")).hits.ids.tolist() == ["doc1#p2"]


def test_a_search_grouped_by_parent_returns_one_best_hit_per_parent(tmp_path: Path) -> None:
    with open_engine(tmp_path / "idx") as engine:
        engine.add(doc_items())
        plain = engine.search(Query(text="red red red", k=4, mode="dense")).items
        assert all(item.parent == "doc1" for item in plain)  # the pages of doc1 crowd the top
        grouped = engine.search(Query(text="red red red", k=4, mode="dense", group="parent"))
        keys = [item.parent or item.id for item in grouped.items]
        assert len(keys) == 4 and len(set(keys)) == 4 and keys[0] == "doc1"
        assert grouped.items[0].id == plain[0].id  # the best hit of a group is the group's best
        everything = engine.search(Query(text="red", k=20, mode="dense", group="parent")).items
        assert sorted({i.parent or i.id for i in everything}) == ["doc1", "doc2", "lone", "v1"]  # all groups
        with pytest.raises(ValidationError, match="group"):
            Query(text="red", group="folder")


def test_deleting_a_parent_deletes_its_segments_in_every_follower(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with open_engine(index) as engine:
        engine.add(doc_items())
    follower = Engine.open(index)  # another reader of the same folder (as a server would be)
    try:
        assert len(follower) == 15
        with Engine.open(index) as writer:
            before = writer.store.last_seq()
            assert writer.delete(["doc1", "nosuch"]) == 1  # how many of the ids asked existed
            deleted = [row for row, op in writer.store.changes_since(before) if op == "delete"]
            assert len(deleted) == 9  # the parent and its eight pages, each in the change log
            assert "doc1#p1" not in writer and len(writer) == 6
        for k in (5, 20):
            hits = follower.search(Query(text="red red red page", k=k, mode="dense")).hits.ids.tolist()
            assert not any(h.startswith("doc1") for h in hits) and len(hits) == min(k, 6)
        assert len(follower) == 6
    finally:
        follower.close()
    with Engine.open(index) as reopened:  # and from the checkpoint plus the log
        assert len(reopened) == 6 and "doc1#p5" not in reopened


def test_segments_in_the_cli(tmp_path: Path) -> None:
    catalog = tmp_path / "docs.jsonl"
    lines = [
        {"id": "doc1", "title": "red guide"},
        {"id": "doc1#p1", "text": "red red page one", "parent": "doc1", "span": 1},
        {"id": "doc1#p2", "text": "red red page two", "parent": "doc1", "span": {"page": 2}},
        {"id": "v1#0", "text": "red clip", "parent": "v1", "span": [0, 12.5]},
        {"id": "bad", "text": "x", "parent": "v1", "span": {"page": 1, "start": 2}},
    ]
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    index = tmp_path / "idx"
    done = cli(index, "--encoder", "hashing", "--index-kind", "exact", "add", str(catalog), "--json")
    assert done.returncode == 1 and "span" in json.loads(done.stdout)["rejected"][0]["reason"], done.stdout
    done = cli(index, "get", "v1#0", "--json")
    view = json.loads(done.stdout)
    assert view["parent"] == "v1" and view["span"] == {"start": 0.0, "end": 12.5}
    done = cli(index, "search", "red red", "--mode", "dense", "--where", "parent=doc1", "--where", "span>=2", "--json")
    assert [h["id"] for h in json.loads(done.stdout)["hits"]] == ["doc1#p2"], done.stderr
    done = cli(index, "search", "red red page", "--mode", "dense", "--group", "parent", "-k", "5", "--json")
    hits = json.loads(done.stdout)["hits"]
    assert sorted(h["parent"] or h["id"] for h in hits) == ["doc1", "v1"] and len(hits) == 2, done.stderr
    done = cli(index, "search", "red red page", "--mode", "dense", "-k", "3")
    assert "(of doc1, page" in done.stdout and "(of v1, 0–12.5 s)" in done.stdout, done.stdout
    done = cli(index, "delete", "doc1", "--json")
    assert json.loads(done.stdout)["deleted"] == 1
    assert cli(index, "get", "doc1#p1").returncode != 0


def test_segments_in_the_rest_api(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve import ApiKey, ServeConfig, create_app

    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"}), "writer"),), mcp=False, log_requests=False)
    with (
        open_engine(tmp_path / "idx") as engine,
        TestClient(
            create_app(engine, config), headers={"Authorization": f"Bearer {WRITER}"}, base_url="http://localhost"
        ) as client,
    ):
        items = [
            {"id": "doc1", "title": "red guide"},
            {"id": "doc1#p1", "text": "red red page", "parent": "doc1", "span": 1},
            {"id": "doc1#p2", "text": "red red red page", "parent": "doc1", "span": {"page": 2}},
            {"id": "v1#0", "text": "red clip", "parent": "v1", "span": [0, 12.5]},
            {"id": "bad", "text": "x", "span": {"end": 3}},
        ]
        r = client.post("/items", json={"items": items})
        assert r.status_code == 200 and len(r.json()["added"]) == 4, r.text
        assert r.json()["rejected"][0]["where"] == "bad" and "span" in r.json()["rejected"][0]["reason"]
        got = client.get("/items/doc1%23p2").json()
        assert got["parent"] == "doc1" and got["span"] == {"page": 2}
        r = client.post(
            "/search", json={"text": "red red red", "k": 5, "mode": "dense", "group": "parent", "log": False}
        )
        hits = r.json()["hits"]
        assert r.status_code == 200 and [h["parent"] or h["id"] for h in hits] == ["doc1", "v1"], r.text
        assert hits[0]["id"] == "doc1#p2" and hits[0]["span"] == {"page": 2}
        r = client.post(
            "/search", json={"text": "red", "k": 5, "mode": "dense", "filters": {"parent": "v1"}, "log": False}
        )
        assert [h["id"] for h in r.json()["hits"]] == ["v1#0"] and r.json()["hits"][0]["span"] == {
            "start": 0.0,
            "end": 12.5,
        }
        assert client.post("/search", json={"text": "red", "group": "folder"}).status_code == 422
        r = client.delete("/items/doc1")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert client.get("/items/doc1%23p1").status_code == 404
        r = client.post("/search", json={"text": "red red red page", "k": 5, "mode": "dense", "log": False})
        assert [h["id"] for h in r.json()["hits"]] == ["v1#0"]


def _downgrade_to_v2(path: Path) -> None:
    """Make the store what the previous release wrote: schema 2, an ``image`` column, no media or segments."""
    db = sqlite3.connect(path)
    db.execute("DROP INDEX items_parent")
    db.execute("ALTER TABLE items ADD COLUMN image TEXT")
    db.execute("UPDATE items SET image = json_extract(media, '$.image')")
    for column in ("media", "parent", "span"):
        db.execute(f"ALTER TABLE items DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()


def test_a_version_2_store_upgrades_in_place(tmp_path: Path) -> None:
    from tests.test_view import png

    index = tmp_path / "idx"
    with open_engine(index) as engine:
        engine.add([Item.create("lamp", title="desk lamp", image=png((200, 180, 40))), Item.create("t", title="text")])
        image = engine.get("lamp").image
    _downgrade_to_v2(index / "store.sqlite")
    with Engine.open(index) as engine:
        assert engine.store.get_meta("schema_version") == SCHEMA_VERSION == 3
        assert engine.store.get_meta("media_migrated")["images"] == 1
        lamp = engine.get("lamp")
        assert lamp.image == image and lamp.media == {"image": image} and lamp.parent is None
        assert engine.search(Query(text="desk lamp", k=1, mode="dense")).hits.ids.tolist() == ["lamp"]
        engine.add([Item.create("lamp#1", title="lamp detail", parent="lamp", span=1)])
        assert engine.delete(["lamp"]) == 1 and "lamp#1" not in engine
    store = SQLiteStore(index / "store.sqlite")  # a second open upgrades nothing
    try:
        assert store.get_meta("media_migrated")["images"] == 1 and store.get_meta("schema_version") == 3
    finally:
        store.close()


def test_segments_through_mcp(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    mcp = pytest.importorskip("mcp")
    import asyncio

    from xmodal.serve.mcp import build_mcp

    with open_engine(tmp_path / "idx") as engine:
        engine.add(doc_items())

        async def main() -> list[Any]:
            async with mcp.Client(build_mcp(engine)) as client:
                return [
                    await client.call_tool(
                        "search", {"text": "red red red", "k": 3, "mode": "dense", "group": "parent"}
                    ),
                    await client.call_tool("search", {"text": "red", "k": 9, "filters": {"parent": "v1"}}),
                    await client.call_tool("get_item", {"id": "v1#1"}),
                    await client.call_tool("search", {"text": "red", "group": "folder"}),
                ]

        grouped, filtered, got, bad = [
            r if r.is_error else json.loads(r.content[0].text) if not r.structured_content else r.structured_content
            for r in asyncio.run(main())
        ]
    # ids and parents are catalog text: inside the untrusted-data fence
    keys = [h["data"]["parent"] or h["data"]["id"] for h in grouped["hits"]]
    assert len(keys) == 3 == len(set(keys)) and grouped["hits"][0]["data"]["parent"] == "doc1"
    assert sorted(h["data"]["id"] for h in filtered["hits"]) == ["v1#0", "v1#1", "v1#2"]
    assert got["item"]["data"]["parent"] == "v1" and got["item"]["span"] == {"start": 10.0, "end": 20.0}
    assert bad.is_error and "group" in bad.content[0].text
