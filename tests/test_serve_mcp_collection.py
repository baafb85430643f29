"""The MCP collection tools (get_items, scroll, delete_items, delete_where, update_attributes) and search
cursors, in process and over streamable HTTP with read and write keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.mcp import NOTICE, build_mcp  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402
from .test_serve_mcp import structured  # noqa: E402

READER, WRITER = "mcp-reader-0001", "mcp-writer-0001"


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add(text_items(12))
        yield eng


def call(server_or_url: Any, tool: str, arguments: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    async def main() -> Any:
        target = server_or_url
        if isinstance(server_or_url, str):  # over HTTP, with the key's headers
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            target = streamable_http_client(server_or_url, http_client=httpx2.AsyncClient(headers=headers or {}))
        async with mcp.Client(target) as client:
            return await client.call_tool(tool, arguments)

    return asyncio.run(main())


def test_read_tools(engine: Engine) -> None:
    server = build_mcp(engine)
    got = structured(call(server, "get_items", {"ids": ["t2", "nope", "t0"]}))
    assert [i["data"]["id"] for i in got["items"]] == ["t2", "t0"] and got["missing"] == ["nope"]
    assert got["notice"] == NOTICE and "id" not in got["items"][0]  # catalog text inside the fence
    ids, cursor = [], None
    while True:
        page = structured(call(server, "scroll", {"filters": {"color": "red"}, "limit": 2, "cursor": cursor}))
        ids += [i["data"]["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == ["t0", "t4", "t8"]
    assert call(server, "scroll", {"limit": 500}).is_error
    assert call(server, "get_items", {"ids": []}).is_error
    first = structured(call(server, "search", {"text": "item thing", "k": 4, "mode": "dense"}))
    second = structured(
        call(server, "search", {"text": "item thing", "k": 4, "mode": "dense", "cursor": first["next_cursor"]})
    )
    by_offset = structured(call(server, "search", {"text": "item thing", "k": 4, "mode": "dense", "offset": 4}))
    assert [h["data"]["id"] for h in second["hits"]] == [h["data"]["id"] for h in by_offset["hits"]]
    wrong = call(server, "search", {"text": "other", "k": 4, "mode": "dense", "cursor": first["next_cursor"]})
    assert wrong.is_error and "cursor" in wrong.content[0].text


def test_write_tools_in_process(engine: Engine) -> None:
    server = build_mcp(engine)  # no caller (as over stdio): the local user may write
    out = structured(call(server, "update_attributes", {"id": "t1", "attributes": {"color": "gold"}}))
    assert out["item"]["data"]["attributes"]["color"] == "gold" and engine.count({"color": "gold"}) == 1
    assert structured(call(server, "delete_items", {"ids": ["t1", "gone"]})) == {"deleted": 1, "not_found": ["gone"]}
    assert structured(call(server, "delete_where", {"filters": {"color": "red"}})) == {"deleted": 3}
    refused = call(server, "delete_where", {"filters": {}})
    assert refused.is_error and "filters" in refused.content[0].text and engine.count() == 8
    assert structured(call(server, "count", {})) == {"count": 8}


def test_write_tools_over_http_need_the_write_scope(engine: Engine) -> None:
    keys = (ApiKey(READER, frozenset({"read"})), ApiKey(WRITER, frozenset({"read", "write"})))
    app = create_app(engine, ServeConfig(keys=keys, log_requests=False))
    with serve_in_thread(app) as url:
        reader = {"Authorization": f"Bearer {READER}"}
        writer = {"Authorization": f"Bearer {WRITER}"}
        refused = call(f"{url}/mcp", "delete_items", {"ids": ["t1"]}, reader)
        assert refused.is_error and "write" in refused.content[0].text and "t1" in engine
        anonymous = call(f"{url}/mcp", "update_attributes", {"id": "t1", "attributes": {"x": 1}})
        assert anonymous.is_error and "write" in anonymous.content[0].text
        assert structured(call(f"{url}/mcp", "get_items", {"ids": ["t1"]}, reader))["missing"] == []
        assert structured(call(f"{url}/mcp", "delete_items", {"ids": ["t1"]}, writer))["deleted"] == 1
        assert "t1" not in engine
