"""Named indexes: API keys limited to some indexes (REST and MCP over HTTP answer 403 naming any other index),
the config and environment forms of such keys, each named index's search page, and MCP over stdio for a
named index (``xmodal mcp --index-name``)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from xmodal import ConfigError, Engine, Item  # noqa: E402
from xmodal.cli import main as cli_main  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.config import parse_env_keys  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402

DOCS_READER, PICS_WRITER, EVERY = "docs-reader-01", "pics-writer-01", "every-index-01"
KEYS = (
    ApiKey(DOCS_READER, frozenset({"read"}), "docs-reader", indexes=frozenset({"docs"})),
    ApiKey(PICS_WRITER, frozenset({"read", "write"}), "pics-writer", indexes=frozenset({"pics"})),
    ApiKey(EVERY, frozenset({"read", "write"}), "every"),
)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def three(tmp_path: Path) -> Iterator[dict[str, Engine]]:
    engines = {
        name: Engine.open(tmp_path / name, encoder=HashingEncoder(), index="exact") for name in ("root", "docs", "pics")
    }
    engines["root"].add(text_items(2, prefix="r"))
    engines["docs"].add(text_items(6, prefix="d"))
    engines["pics"].add([Item.create(f"p{i}", image=png((60 * i, 0, 200)), title=f"picture {i}") for i in range(3)])
    yield engines
    for engine in engines.values():
        engine.close()


@pytest.fixture
def url(three: dict[str, Engine]) -> Iterator[str]:
    config = ServeConfig(keys=KEYS, log_requests=False)
    app = create_app(three["root"], config, indexes={"docs": three["docs"], "pics": three["pics"]})
    with serve_in_thread(app) as found:
        yield found


def test_a_key_limited_to_some_indexes_gets_403_naming_any_other(url: str, three: dict[str, Engine]) -> None:
    docs = bearer(DOCS_READER)
    assert httpx.post(f"{url}/indexes/docs/count", json={}, headers=docs).json() == {"count": 6}
    hits = httpx.post(f"{url}/indexes/docs/search", json={"text": "item 3", "k": 3}, headers=docs).json()["hits"]
    assert hits and all(h["id"].startswith("d") for h in hits)
    for path in ("/indexes/pics/count", "/indexes/nope/count", "/count"):
        refused = httpx.post(url + path, json={}, headers=docs)
        assert refused.status_code == 403, path
        named = path.split("/")[2] if path.startswith("/indexes/") else "docs: call /indexes/NAME"
        assert repr(named) in refused.text or named in refused.text, refused.text
    assert "'pics'" in httpx.get(f"{url}/indexes/pics/items/p1", headers=docs).json()["error"]
    assert httpx.get(f"{url}/indexes", headers=docs).json() == {
        "indexes": [{"name": "docs", "url": "/indexes/docs", "items": 6}]
    }
    anonymous = httpx.post(f"{url}/indexes/pics/count", json={})  # open reads: no key, every index
    assert anonymous.json() == {"count": 3}
    assert len(httpx.get(f"{url}/indexes", headers=bearer(EVERY)).json()["indexes"]) == 3


def test_a_write_key_limited_to_one_index_writes_only_there(url: str, three: dict[str, Engine]) -> None:
    pics = bearer(PICS_WRITER)
    added = httpx.post(f"{url}/indexes/pics/items", json={"items": [{"id": "new", "title": "a pic"}]}, headers=pics)
    assert added.status_code == 200 and "new" in three["pics"]
    refused = httpx.delete(f"{url}/indexes/docs/items/d1", headers=pics)
    assert refused.status_code == 403 and "'docs'" in refused.json()["error"] and "d1" in three["docs"]
    assert httpx.delete(f"{url}/items/r1", headers=pics).status_code == 403 and "r1" in three["root"]
    assert httpx.delete(f"{url}/indexes/docs/items/d1", headers=bearer(EVERY)).status_code == 200


def test_mcp_over_http_follows_the_keys_indexes(url: str) -> None:
    mcp = pytest.importorskip("mcp")
    from .test_serve_mcp_collection import call

    refused = httpx.post(
        f"{url}/indexes/pics/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream", **bearer(DOCS_READER)},
    )
    assert refused.status_code == 403 and "'pics'" in refused.json()["error"]
    assert mcp is not None
    found = call(f"{url}/indexes/docs/mcp", "count", {}, bearer(DOCS_READER))
    assert not found.is_error and '"count":6' in found.content[0].text.replace(" ", "")


def test_limited_keys_in_the_config_file_and_the_environment(tmp_path: Path, three: dict[str, Engine]) -> None:
    (tmp_path / "serve.toml").write_text(
        '[[keys]]\nkey = "docs-reader-01"\nscopes = ["read"]\nindexes = ["docs", "pics"]\n', encoding="utf-8"
    )
    config = ServeConfig.load(tmp_path / "serve.toml", env={})
    assert config.keys[0].indexes == frozenset({"docs", "pics"})
    env = parse_env_keys("aaaaaaaa1:read+write@docs+pics,bbbbbbbb2:read")
    assert env[0].indexes == frozenset({"docs", "pics"}) and env[0].scopes == {"read", "write"}
    assert env[1].indexes is None
    (tmp_path / "bad.toml").write_text('[[keys]]\nkey = "docs-reader-01"\nindexes = "docs"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keys\[0\]\.indexes must be a list"):
        ServeConfig.load(tmp_path / "bad.toml", env={})
    with pytest.raises(ConfigError, match="name the indexes after '@'"):
        parse_env_keys("aaaaaaaa1:read@")
    with pytest.raises(ConfigError, match="is not an index name"):
        parse_env_keys("aaaaaaaa1:read@no/slash")
    typo = ServeConfig(keys=(ApiKey("cccccccc3", frozenset({"read"}), indexes=frozenset({"dosc"})),))
    with pytest.raises(ConfigError, match="limited to the index 'dosc', which this server does not serve"):
        create_app(None, typo, indexes={"docs": three["docs"]})


def test_each_named_index_has_its_search_page(url: str) -> None:
    root = httpx.get(f"{url}/")
    assert root.status_code == 200 and "xmodal-base" not in root.text
    for path in ("/indexes/docs/", "/indexes/docs"):
        page = httpx.get(url + path)
        assert page.status_code == 200 and '<meta name="xmodal-base" content="/indexes/docs">' in page.text
        assert "<title>docs: xmodal search" in page.text
    missing = httpx.get(f"{url}/indexes/nope/")
    assert missing.status_code == 404 and "docs" in missing.json()["fix"]
    assert "fetch(BASE + path" in httpx.get(f"{url}/static/app.js").text


def test_mcp_over_stdio_for_a_named_index(tmp_path: Path, three: dict[str, Engine], capsys: Any) -> None:
    mcp = pytest.importorskip("mcp")
    from mcp.client.stdio import StdioServerParameters, get_default_environment

    from .test_serve_mcp import structured

    for engine in three.values():
        engine.checkpoint()
    config = tmp_path / "serve.toml"
    config.write_text(f'[indexes]\ndocs = "{tmp_path / "docs"}"\npics = "{tmp_path / "pics"}"\n', encoding="utf-8")
    env = {**get_default_environment(), **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    args = ["-m", "xmodal.serve", "mcp", "--config", str(config), "--index-name", "pics"]
    params = StdioServerParameters(command=sys.executable, args=args, env=env)

    async def main() -> dict[str, Any]:
        async with mcp.Client(params) as client:
            return structured(await client.call_tool("search", {"text": "picture 1", "k": 2, "mode": "dense"}))

    found = asyncio.run(main())
    assert found["hits"] and all(h["data"]["id"].startswith("p") for h in found["hits"])
    assert all(h["image"]["url"].startswith("/indexes/pics/items/") for h in found["hits"])  # as serve answers it
    assert cli_main(["mcp", "--config", str(config), "--index-name", "nope"]) == 2
    assert "names no such index (its [indexes]: docs, pics)" in capsys.readouterr().err
    assert cli_main(["mcp", "--index-name", "pics"]) == 2
    assert "give the server config that names it" in capsys.readouterr().err
