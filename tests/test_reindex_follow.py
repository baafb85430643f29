"""After ``POST /admin/reindex`` switches, every consumer of the served index follows it, not only the REST
routes: MCP over HTTP (``/mcp``) searches and writes through the reopened engine and ``/metrics`` reads its
gauges and its encoder's counters. A real server on 127.0.0.1 moves a hashing index to the ``http-embeddings``
encoder (a local OpenAI-compatible fake): a search over MCP after the switch must reach the fake server, which
only the new encoder calls."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")
httpx = pytest.importorskip("httpx")

from tests.conftest import text_items  # noqa: E402
from tests.fake_embeddings_server import Behaviour, fake_server  # noqa: E402
from tests.test_serve_mcp import structured  # noqa: E402
from xmodal import Engine  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ADMIN, WRITER = "admin-key-0001", "write-key-0001"
KEYS = (ApiKey(ADMIN, frozenset({"admin"}), "admin"), ApiKey(WRITER, frozenset({"write", "read"}), "writer"))
A, W = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {WRITER}"}


def mcp_call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One tool call over streamable HTTP with the writer's key."""

    async def main() -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        target = streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(headers=W, timeout=30))
        async with mcp.Client(target) as client:
            return await client.call_tool(tool, arguments)

    return structured(asyncio.run(main()))


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of one sample of ``/metrics`` (None when it is absent)."""
    found = re.search(rf"^{re.escape(name + (('{' + labels + '}') if labels else ''))} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else None


def reindex(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/admin/reindex", json=body, headers=A, timeout=60)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_mcp_and_metrics_follow_a_rest_reindex_switch(tmp_path: Path) -> None:
    behaviour = Behaviour(dim=48)
    with Engine.open(tmp_path / "idx", encoder="hashing", dim=32, index="exact") as engine:
        engine.add(text_items(40))
    engine = Engine.open(tmp_path / "idx", index="exact")
    app = create_app(engine, ServeConfig(keys=KEYS))
    try:
        with fake_server(behaviour) as embeddings, serve_in_thread(app) as url:
            before = mcp_call(url, "search", {"text": "item 7 black", "k": 3, "mode": "dense"})
            assert before["hits"] and behaviour.requests == []  # the hashing encoder: no call to the fake
            metrics = httpx.get(f"{url}/metrics", headers=W).text
            assert metric(metrics, "xmodal_index_items") == 40.0
            assert "xmodal_encoder_usage_total{" not in metrics  # a local encoder counts nothing

            options = {"url": embeddings, "model": "fake-model"}
            reindex(url, {"action": "start", "encoder": "http-embeddings", "encoder_options": options, "share": 1})
            deadline = time.monotonic() + 120
            while (status := reindex(url, {"action": "status"}))["state"] != "ready" or status["running"]:
                assert time.monotonic() < deadline and status["error"] is None, status
                time.sleep(0.05)
            switched = reindex(url, {"action": "switch"})
            assert switched["reopened"] is True, switched

            sent = len(behaviour.requests)
            after = mcp_call(url, "search", {"text": "item 7 black", "k": 3, "mode": "dense"})
            assert after["hits"][0]["data"]["id"] == "t7"
            assert len(behaviour.requests) == sent + 1  # the MCP search was embedded by the new encoder
            assert behaviour.requests[-1]["input"] == ["item 7 black"]

            # a write over MCP goes to the reopened engine (the old one refuses writes after a switch)
            added = mcp_call(url, "add_items", {"items": [{"id": "kite", "title": "violet kite over the dunes"}]})
            assert added == {"added": ["kite"], "rejected": []}
            found = mcp_call(url, "search", {"text": "violet kite over the dunes", "k": 1, "mode": "dense"})
            assert found["hits"][0]["data"]["id"] == "kite"

            info = httpx.get(f"{url}/info", headers=W).json()
            metrics = httpx.get(f"{url}/metrics", headers=W).text
    finally:
        app.state.xmodal.default.engine.close()
        engine.close()
    assert info["encoder"]["name"] == "http-embeddings" and info["items"] == 41
    assert metric(metrics, "xmodal_index_items") == 41.0
    usage = info["encoder_usage"]
    assert usage["requests"] >= 3  # the MCP searches and add, at least
    for what, count in usage.items():
        labels = f'encoder="http-embeddings",what="{what}"'
        assert metric(metrics, "xmodal_encoder_usage_total", labels) == float(count), (what, metrics)
