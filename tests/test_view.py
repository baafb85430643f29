"""The one item view (:mod:`xmodal.view`), and that the CLI, REST and MCP all give it for the same item."""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.records import Hits, Modality
from xmodal.results import SearchResult
from xmodal.view import CATALOG_FIELDS, hit_view, hits_view, item_view, jsonable, result_view

ITEM_KEYS = {
    "id",
    "modality",
    "title",
    "text",
    "attributes",
    "media",
    "image",
    "created_at",
    "updated_at",
    "parent",
    "span",
    "media_url",
    "thumbnail_url",
}


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 16), color).save(out, format="PNG")
    return out.getvalue()


# -- the view itself ---------------------------------------------------------------------------------


def test_item_view_has_every_field_and_media_paths() -> None:
    item = Item.create("a/b c", title="Lamp", text="warm", attributes={"room": "office", "n": 2})
    view = item_view(item)
    assert set(view) == ITEM_KEYS
    assert view["modality"] == "text" and view["attributes"] == {"room": "office", "n": 2}
    assert view["image"] is None and view["media_url"] is None and view["thumbnail_url"] is None
    assert view["created_at"] == item.created_at and json.loads(json.dumps(view)) == view
    with_image = item_view(Item.create("a/b c", title="Lamp", image="media/ab.png"))
    assert with_image["image"] == "media/ab.png" and with_image["modality"] == "image+text"
    assert with_image["media_url"] == "/items/a%2Fb%20c/media" and with_image["thumbnail_url"].endswith("/thumbnail")


def test_item_view_never_puts_bytes_in_json() -> None:
    view = item_view(Item.create("x", image=b"\x89PNG1234"))
    assert view["image"] == "<8 bytes>" and view["modality"] == "image"


def test_every_modality_is_shown_by_its_value() -> None:
    for modality in Modality:
        item = Item(id="m", modality=modality, title="t", image="media/x.png")
        assert item_view(item)["modality"] == modality.value


def test_a_segment_shows_its_parent_and_span() -> None:
    view = item_view(Item.create("v#2", text="hello", parent="v", span=(1.5, 3.0)))
    assert view["parent"] == "v" and view["span"] == {"start": 1.5, "end": 3.0} and set(view) == ITEM_KEYS
    page = item_view(Item.create("doc#3", text="page three", parent="doc", span=3))
    assert page["span"] == {"page": 3} and json.loads(json.dumps(page)) == page
    whole = item_view(Item.create("doc", title="a document", media={"image": "media/ab.png"}))
    assert whole["parent"] is None and whole["span"] is None and whole["media"] == {"image": "media/ab.png"}
    assert whole["image"] == "media/ab.png"


def test_hit_view_is_the_item_view_with_score_and_provenance() -> None:
    item = Item.create("h", title="hat")
    view = hit_view(item, np.float32(0.123456789), "dense:text")
    assert view == {**item_view(item), "score": 0.123457, "provenance": "dense:text"}
    assert isinstance(view["score"], float)


def test_hits_without_provenance_get_an_empty_one() -> None:
    items = (Item.create("a", title="a"), Item.create("b", title="b"))
    views = hits_view(Hits.of(["a", "b"], [0.9, 0.5]), items)
    assert [(v["id"], v["provenance"]) for v in views] == [("a", ""), ("b", "")]


def test_result_view_and_to_dict_agree() -> None:
    item = Item.create("a", title="a")
    plain = SearchResult(Hits.of(["a"], [0.5], "dense:text"), (item,), 1.23456, 0.5)
    assert plain.to_dict() == result_view(plain)
    assert set(result_view(plain)) == {"hits", "took_ms", "encode_ms"} and result_view(plain)["took_ms"] == 1.235
    explained = SearchResult(
        Hits.empty(), (), 1.0, 0.0, "q1", {"plan": ("dense",), "w": np.float32(0.5), "bad": math.nan}
    )
    view = explained.to_dict()
    assert view["query_id"] == "q1" and view["explain"] == {"plan": ["dense"], "w": 0.5, "bad": None}
    json.dumps(view, allow_nan=False)


def test_jsonable_makes_strict_json() -> None:
    value = {1: (Modality.IMAGE, {np.int64(3)}), "f": [math.inf, 1.5], "o": object}
    out = jsonable(value)
    assert out["1"] == ["image", [3]] and out["f"] == [None, 1.5] and isinstance(out["o"], str)
    json.dumps(out, allow_nan=False)


# -- the same view from every adapter -------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("view") / "idx"
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(
            [
                Item.create(
                    "lamp",
                    title="Desk lamp",
                    text="a warm desk lamp",
                    image=png((200, 180, 40)),
                    attributes={"room": "office", "price": 25.5},
                ),
                Item.create(
                    "sofa",
                    title="Green sofa",
                    text="three seat sofa",
                    image=png((20, 160, 60)),
                    attributes={"room": "living", "seats": 3},
                ),
                Item.create("chair", title="Office chair", text="a desk chair", attributes={"room": "office"}),
                Item.create("rug", title="Rug", text="a wool rug for the living room", attributes={"room": "living"}),
            ]
        )
    return path


def cli_json(capsys: pytest.CaptureFixture[str], index: Path, *argv: str) -> Any:
    from xmodal.cli import main

    code = main(["--index", str(index), *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def unfenced(view: dict[str, Any]) -> dict[str, Any]:
    """An MCP item or hit turned back into the shared view (what :func:`xmodal.serve.mcp.fenced` regrouped)."""
    out = {k: v for k, v in view.items() if k not in ("data", "image")}
    data = dict(view["data"])
    assert data.pop("untrusted") is True and set(data) == set(CATALOG_FIELDS)
    image = view["image"] or {}
    if image:
        assert image["resource"] == f"xmodal://items/{data['id']}/image"
    return {
        **out,
        **data,
        "image": image.get("ref"),
        "media_url": image.get("url"),
        "thumbnail_url": image.get("thumbnail_url"),
    }


@pytest.fixture(scope="module")
def adapters(index: Path) -> Iterator[tuple[Any, Any]]:
    """(a REST test client, an in-process MCP server) over one open engine."""
    pytest.importorskip("fastapi")
    pytest.importorskip("mcp")
    from fastapi.testclient import TestClient

    from xmodal.serve import ServeConfig, create_app
    from xmodal.serve.mcp import build_mcp

    with (
        Engine.open(index) as engine,
        TestClient(
            create_app(engine, ServeConfig(mcp=False, log_requests=False)), base_url="http://localhost"
        ) as client,
    ):
        yield client, build_mcp(engine)


def mcp_call(server: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    import mcp

    async def main() -> dict[str, Any]:
        async with mcp.Client(server) as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result
            return dict(result.structured_content or json.loads(result.content[0].text))

    return asyncio.run(main())


@pytest.mark.parametrize("item_id", ["lamp", "chair"])
def test_an_item_has_the_same_view_in_cli_rest_and_mcp(
    index: Path, adapters: tuple[Any, Any], item_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client, server = adapters
    with Engine.open(index) as engine:
        expected = item_view(engine.get(item_id))
    cli = cli_json(capsys, index, "get", item_id)
    rest = client.get(f"/items/{item_id}").json()
    agent = mcp_call(server, "get_item", {"id": item_id})["item"]
    assert set(cli) == ITEM_KEYS
    assert cli == rest == unfenced(agent) == expected


def test_a_search_has_the_same_hits_in_cli_rest_and_mcp(
    index: Path, adapters: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client, server = adapters
    cli = cli_json(capsys, index, "search", "warm desk lamp", "--mode", "dense", "-k", "3")["hits"]
    rest = client.post("/search", json={"text": "warm desk lamp", "mode": "dense", "k": 3, "log": False}).json()["hits"]
    agent = [
        unfenced(h) for h in mcp_call(server, "search", {"text": "warm desk lamp", "mode": "dense", "k": 3})["hits"]
    ]
    assert len(cli) == 3 and set(cli[0]) == ITEM_KEYS | {"score", "provenance"}
    assert cli == rest == agent


def test_similar_items_are_the_engines_in_cli_rest_and_mcp(
    index: Path, adapters: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client, server = adapters
    with Engine.open(index) as engine:
        expected = engine.similar("lamp", k=2, target="text").to_dict()["hits"]
    cli = cli_json(capsys, index, "similar", "lamp", "-k", "2", "--target", "text")["hits"]
    rest = client.get("/items/lamp/similar", params={"k": 2, "target": "text"}).json()["hits"]
    agent = [unfenced(h) for h in mcp_call(server, "similar_items", {"id": "lamp", "k": 2, "target": "text"})["hits"]]
    assert len(expected) == 2 and "lamp" not in [h["id"] for h in expected]
    assert all(h["provenance"] == "similar:dense:text" for h in expected)
    assert cli == rest == agent == expected
