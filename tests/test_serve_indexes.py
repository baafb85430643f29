"""Several named indexes behind one server (``/indexes/{name}/…``), against a real server on 127.0.0.1 with
two real indexes: each route reaches its own index, unknown names get a clear 404, the root routes are
unchanged, and MCP, metrics and backups follow the index."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from xmodal import ConfigError, Engine, Item  # noqa: E402
from xmodal.cli import main  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402

WRITER, READER = "write-key-0001", "read-key-00001"
KEYS = (ApiKey(WRITER, frozenset({"admin"}), "writer"), ApiKey(READER, frozenset({"read"}), "reader"))
W, R = {"Authorization": f"Bearer {WRITER}"}, {"Authorization": f"Bearer {READER}"}
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **R}


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    docs = Engine.open(tmp_path / "docs", encoder=HashingEncoder(), index="exact")
    pics = Engine.open(tmp_path / "pics", encoder=HashingEncoder(), index="exact")
    docs.add(text_items(12, prefix="d"))
    pics.add([Item.create(f"p{i}", image=_png((40 * i, 0, 200)), title=f"picture {i}") for i in range(3)])
    yield docs, pics
    docs.close()
    pics.close()


@pytest.fixture
def named(two: tuple[Engine, Engine], tmp_path: Path) -> Iterator[str]:
    config = ServeConfig(keys=KEYS, open_reads=False, backup_dir=str(tmp_path / "backups"))
    with serve_in_thread(create_app(None, config, indexes={"docs": two[0], "pics": two[1]})) as url:
        yield url


def test_each_named_index_answers_its_own_routes(named: str, two: tuple[Engine, Engine]) -> None:
    listed = httpx.get(f"{named}/indexes", headers=R)
    assert listed.status_code == 200
    assert listed.json() == {
        "indexes": [
            {"name": "docs", "url": "/indexes/docs", "items": 12},
            {"name": "pics", "url": "/indexes/pics", "items": 3},
        ]
    }
    assert httpx.post(f"{named}/indexes/docs/count", json={}, headers=R).json() == {"count": 12}
    assert httpx.post(f"{named}/indexes/pics/count", json={}, headers=R).json() == {"count": 3}
    added = httpx.post(f"{named}/indexes/pics/items", json={"items": [{"id": "new", "title": "a new pic"}]}, headers=W)
    assert added.status_code == 200 and added.json()["added"] == ["new"]
    assert "new" in two[1] and "new" not in two[0]
    hits = httpx.post(f"{named}/indexes/docs/search", json={"text": "item 3", "k": 5}, headers=R).json()["hits"]
    assert hits and all(hit["id"].startswith("d") for hit in hits)
    assert httpx.get(f"{named}/indexes/docs/items/d1", headers=R).json()["id"] == "d1"
    assert httpx.get(f"{named}/indexes/pics/items/d1", headers=R).status_code == 404  # another index's item
    assert httpx.delete(f"{named}/indexes/docs/items/d1", headers=W).status_code == 200
    assert "d1" not in two[0]


def test_the_python_client_reaches_a_named_index(named: str) -> None:
    """``xmodal.Client`` on an index's URL works as on a single-index server."""
    from xmodal import Client

    with (
        Client(f"{named}/indexes/pics", api_key=WRITER) as pics,
        Client(f"{named}/indexes/docs", api_key=READER) as docs,
    ):
        assert pics.count() == 3 and docs.count() == 12
        assert pics.add([Item.create("via-client", title="a picture by client")]).added == ["via-client"]
        assert pics.get("via-client").title == "a picture by client" and docs.count() == 12
        assert [item.id for item in docs.search("item 3", k=3).items][0].startswith("d")


def test_item_paths_in_answers_are_the_named_index_paths(named: str) -> None:
    item = httpx.get(f"{named}/indexes/pics/items/p1", headers=R).json()
    assert item["media_url"] == "/indexes/pics/items/p1/media"
    assert item["thumbnail_url"] == "/indexes/pics/items/p1/thumbnail"
    media = httpx.get(f"{named}{item['media_url']}", headers=R)
    assert media.status_code == 200 and media.content == _png((40, 0, 200))
    assert httpx.get(f"{named}{item['thumbnail_url']}", headers=R).status_code == 200
    hits = httpx.post(f"{named}/indexes/pics/search", json={"text": "picture", "k": 3}, headers=R).json()["hits"]
    assert {hit["media_url"] for hit in hits} == {f"/indexes/pics/items/p{i}/media" for i in range(3)}


def test_an_unknown_index_name_is_a_clear_404_after_the_key_check(named: str) -> None:
    answer = httpx.post(f"{named}/indexes/nope/search", json={"text": "x"}, headers=R)
    assert answer.status_code == 404
    body = answer.json()
    assert body["field"] == "index" and "'nope'" in body["error"] and "docs, pics" in body["fix"]
    assert "GET /indexes" in body["fix"]
    anonymous = httpx.post(f"{named}/indexes/nope/search", json={"text": "x"})
    assert anonymous.status_code == 401 and "docs" not in anonymous.text  # names are not told without a key
    root = httpx.post(f"{named}/search", json={"text": "x"}, headers=R)
    assert root.status_code == 404 and root.json()["field"] == "index" and "/indexes/NAME" in root.json()["fix"]
    assert httpx.get(f"{named}/health").json()["items"] == 15  # both indexes together


def test_default_index_keeps_the_root_routes(two: tuple[Engine, Engine]) -> None:
    docs, pics = two
    with serve_in_thread(create_app(docs, ServeConfig(keys=KEYS), indexes={"pics": pics})) as url:
        assert httpx.post(f"{url}/count", json={}).json() == {"count": 12}
        assert httpx.post(f"{url}/indexes/pics/count", json={}).json() == {"count": 3}
        assert httpx.get(f"{url}/items/d2").json()["id"] == "d2"
        listed = httpx.get(f"{url}/indexes").json()["indexes"]
        assert listed[0] == {"name": None, "url": "", "items": 12} and listed[1]["name"] == "pics"


def test_one_index_server_says_it_has_no_named_ones(two: tuple[Engine, Engine]) -> None:
    with serve_in_thread(create_app(two[0], ServeConfig(keys=KEYS))) as url:
        answer = httpx.post(f"{url}/indexes/docs/search", json={"text": "x"})
        assert answer.status_code == 404 and answer.json()["field"] == "index"
        assert "serves one index" in answer.json()["error"] and "drop /indexes/NAME" in answer.json()["fix"]
        assert httpx.get(f"{url}/indexes").json() == {"indexes": [{"name": None, "url": "", "items": 12}]}
        spec = httpx.get(f"{url}/openapi.json").json()
        assert not [path for path in spec["paths"] if path.startswith("/indexes/")]


def test_openapi_lists_the_prefixed_routes_with_their_parameter(named: str) -> None:
    spec = httpx.get(f"{named}/openapi.json").json()
    search = spec["paths"]["/indexes/{index_name}/search"]["post"]
    assert any(p["name"] == "index_name" and p["in"] == "path" for p in search["parameters"])
    for path in ("/search", "/count", "/items/{item_id}", "/backup"):
        assert "/indexes/{index_name}" + path in spec["paths"], path


def test_metrics_label_each_index(named: str) -> None:
    httpx.post(f"{named}/indexes/docs/search", json={"text": "item"}, headers=R)
    httpx.post(f"{named}/indexes/zzz-unknown/search", json={"text": "item"}, headers=R)
    text = httpx.get(f"{named}/metrics", headers=R).text
    assert 'xmodal_index_items{index="docs"} 12.0' in text and 'xmodal_index_items{index="pics"} 3.0' in text
    assert 'xmodal_requests_total{method="POST",route="/indexes/docs/search",status="200"}' in text
    assert "zzz-unknown" not in text  # an unknown name is not a new label
    assert 'route="/indexes/{index_name}/search",status="404"' in text


def _mcp_call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    answer = httpx.post(url, json=call, headers=MCP, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["result"]["structuredContent"]
    return result


def test_mcp_per_index(named: str) -> None:
    pics = _mcp_call(f"{named}/indexes/pics/mcp", "search", {"text": "picture", "k": 5})
    assert {hit["data"]["id"] for hit in pics["hits"]} == {"p0", "p1", "p2"}
    assert pics["hits"][0]["image"]["url"].startswith("/indexes/pics/items/")
    docs = _mcp_call(f"{named}/indexes/docs/mcp", "count", {})
    assert docs == {"count": 12}
    assert httpx.post(f"{named}/mcp", json={}, headers=MCP).status_code == 404  # no root index: no root /mcp


def test_backup_of_a_named_index(named: str, tmp_path: Path) -> None:
    done = httpx.post(f"{named}/indexes/pics/backup", json={"name": "pics-1"}, headers=W, timeout=60)
    assert done.status_code == 200 and done.json()["items"] == 3
    assert json.loads((tmp_path / "backups" / "pics-1" / "manifest.json").read_text())["items"] == 3


def test_index_names_and_folders_are_checked(two: tuple[Engine, Engine], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'bad/name' is not an index name"):
        create_app(None, ServeConfig(), indexes={"bad/name": two[0]})
    with pytest.raises(ConfigError, match="nothing to serve"):
        create_app(None, ServeConfig())
    with pytest.raises(ConfigError, match="already served under another name"):
        ServeConfig.from_dict({"indexes": {"a": str(tmp_path / "x"), "b": str(tmp_path / "x")}})
    with pytest.raises(ConfigError, match="table of name = folder"):
        ServeConfig.from_dict({"indexes": ["docs"]})
    config = ServeConfig.from_dict({"indexes": {"docs": "/srv/docs"}, "backup_dir": "/srv/backups"})
    assert config.indexes == (("docs", "/srv/docs"),) and config.backup_dir == "/srv/backups"


def test_cli_serve_index_name_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--index", str(tmp_path / "a"), "serve", "--port", "1"]
    assert main([*base, "--index-name", "docs"]) == 2
    assert "is not NAME=DIR" in capsys.readouterr().err
    assert main([*base, "--index-name", f"x={tmp_path / 'b'}", "--index-name", f"x={tmp_path / 'c'}"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([*base, "--index-name", f"a={tmp_path / 'a'}"]) == 2
    assert "is the --index folder" in capsys.readouterr().err
    assert main([*base, "--index-name", f"a b={tmp_path / 'b'}"]) == 1
    assert "is not an index name" in capsys.readouterr().err
