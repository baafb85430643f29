"""The bad input of issue 16's collection operations, through each adapter: every answer names the field and
the fix. (Vectors of the wrong length or with NaN, a cursor of another index or expired, an export to a path
that exists and an offset past the end are also covered where those operations are tested.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError

from .conftest import text_items

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

W = {"Authorization": "Bearer bad-input-writer", "Content-Type": "application/json"}


def deep_filter(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"color": "red"}
    for _ in range(depth):
        out = {"and": [out]}
    return out


def deep_text(depth: int) -> str:
    return '{"and": [' * depth + '{"color": "red"}' + "]}" * depth


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(8))
        engine.add([Item.create("n", title="nested", attributes={"meta": {"brand": "acme"}, "name": "bob"})])
        yield engine


@pytest.fixture
def url(index: Engine) -> Iterator[str]:
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    keys = (ApiKey("bad-input-writer", frozenset({"read", "write"}), "writer"),)
    with serve_in_thread(create_app(index, ServeConfig(keys=keys, log_requests=False))) as served:
        yield served


def test_python_api(index: Engine, tmp_path: Path) -> None:
    checks = [
        (lambda: index.count(deep_filter(1000)), "filters: nests and/or/not more than 32 levels deep"),
        (lambda: index.scroll(deep_filter(1000)), "filters: nests and/or/not more than 32 levels deep"),
        (lambda: index.export(tmp_path / "x.jsonl", filters=deep_filter(1000)), "more than 32 levels deep"),
        (lambda: index.search("item", filters=deep_filter(1000)), "more than 32 levels deep"),
        (lambda: index.count({"name.first": "bob"}), "filters.name.first: 'name' never holds an object"),
        (lambda: index.scroll({"name.first": "bob"}), "filters.name.first: 'name' never holds an object"),
        (lambda: index.count({"n": {"gt": float("nan")}}), r"filters.n.gt: bound nan is not a finite number"),
        (lambda: index.update_attributes("t1", {"p": float("inf")}), "attributes.p: is NaN or infinite"),
        (lambda: index.search_by_vector([0.1] * 5), "vector: has 5 dimensions, the index has 384"),
        (lambda: index.search_by_vectors([[float("nan")] * 384]), r"vectors\[0\]: has a NaN or infinite value"),
    ]
    for call, message in checks:
        with pytest.raises(ValidationError, match=message) as raised:
            call()
        assert raised.value.fix, message  # every one says how to fix it
    assert len(index.search("item", k=5, offset=500).hits) == 0  # past the end: no hits, not an error
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "/count", '{"filters": %s}'),
        ("POST", "/scroll", '{"filters": %s}'),
        ("POST", "/search", '{"text": "item", "filters": %s}'),
        ("POST", "/search/batch", '{"queries": [{"text": "item", "filters": %s}]}'),
        ("POST", "/items/delete", '{"filters": %s}'),
        ("PATCH", "/items/t1", '{"attributes": {"a": %s}}'),
    ],
)
def test_rest_filter_nested_1000_levels(url: str, index: Engine, method: str, route: str, body: str) -> None:
    r = httpx.request(method, f"{url}{route}", content=body % deep_text(1000), headers=W)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body" and "nested too deeply" in r.json()["error"] and r.json()["fix"]
    assert index.count() == 9  # nothing deleted or changed


def test_rest_numbers_paths_and_vectors(url: str, index: Engine) -> None:
    cases = [
        ("POST", "/count", {"filters": {"name.first": "bob"}}, 422, "filters.name.first"),
        ("POST", "/scroll", {"filters": {"price": {"gt": "cheap"}}}, 422, "filters.price.gt"),
        ("POST", "/count", {"filters": {"color": "red"}, "strict": [1]}, 422, "body.strict"),
        ("POST", "/search/batch", {"queries": [{"vector": [0.5] * 3}]}, 422, "queries[0].vector"),
        ("POST", "/scroll", {"limit": 0}, 422, "body.limit"),
    ]
    for method, route, body, status, field in cases:
        r = httpx.request(method, f"{url}{route}", json=body, headers=W)
        assert (r.status_code, r.json()["field"]) == (status, field), (route, r.text)
    infinite = '{"queries": [{"vector": [1e999' + ", 0.1" * 383 + "]}]}"
    r = httpx.post(f"{url}/search/batch", content=infinite, headers=W)
    assert r.status_code == 422 and r.json()["field"] == "queries[0].vector" and "position 0" in r.json()["error"]
    r = httpx.patch(f"{url}/items/t1", content='{"attributes": {"p": 1e999}}', headers=W)
    assert r.status_code == 422 and r.json()["field"] == "attributes.p"
    r = httpx.post(f"{url}/count", content='{"filters": {"price": NaN}}', headers=W)
    assert r.status_code == 400 and "NaN" in r.json()["error"] and r.json()["fix"]
    assert index.get("t1").attributes.get("p") is None  # the refused update changed nothing


def test_cli(index: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(index.path)
    index.close()

    def run(*argv: str) -> tuple[int, str]:
        code = main(["--index", folder, *argv])
        return code, capsys.readouterr().err

    code, err = run("count", "--filter", deep_text(1000))
    assert code == 2 and "--filter: nests more levels than the parser can follow (flatten it" in err
    code, err = run("count", "--filter", deep_text(40))
    assert code == 2 and "filters: nests and/or/not more than 32 levels deep (flatten it" in err
    (tmp_path / "q.txt").write_text("item\n" + deep_text(1000) + "\n")
    code, err = run("search", "--queries", str(tmp_path / "q.txt"))
    assert code == 2 and "line 2: nested too deeply" in err
    code, err = run("scroll", "--where", "name.first=bob")
    assert code == 1 and "'name' never holds an object" in err
    (tmp_path / "out.jsonl").write_text("")
    code, err = run("export", str(tmp_path / "out.jsonl"))
    assert code == 1 and "exists" in err and "--force" in err
    (tmp_path / "v.json").write_text(json.dumps([0.1] * 7))
    code, err = run("search", "--vector-file", str(tmp_path / "v.json"))
    assert code == 1 and "has 7 dimensions" in err


def test_mcp(index: Engine) -> None:
    mcp = pytest.importorskip("mcp")
    from xmodal.serve.mcp import build_mcp

    async def calls() -> list[Any]:
        async with mcp.Client(build_mcp(index)) as client:
            return [
                await client.call_tool("count", {"filters": deep_filter(60)}),
                await client.call_tool("scroll", {"filters": {"name.first": "bob"}}),
                await client.call_tool("delete_where", {"filters": {"name.first": "bob"}}),
                await client.call_tool("search", {"text": "item", "k": 2, "cursor": "not-a-cursor"}),
            ]

    deep, path, delete, cursor = asyncio.run(calls())
    assert deep.is_error and "more than 32 levels deep" in deep.content[0].text
    assert path.is_error and "never holds an object" in path.content[0].text
    assert delete.is_error and index.count() == 9
    assert cursor.is_error and "cursor: is not a cursor this index issued" in cursor.content[0].text
