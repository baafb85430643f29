"""``xmodal mcp --config`` opens the index with the encoder and encoder options of the server config, as
``xmodal serve --config`` does: here an embeddings server's key, which is never recorded in the index, comes
from the config's ``[encoder_options]`` (top level for ``--index``, the named index's own for ``--index-name``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_embeddings_server import Behaviour, fake_server
from xmodal import Engine, Item

mcp = pytest.importorskip("mcp")

KEY = "sekret-key"


def _index(folder: Path, url: str) -> None:
    options = {"url": url, "model": "fake-model", "api_key": KEY}
    with Engine.open(folder, encoder="http-embeddings", encoder_options=options, extensions=[]) as engine:
        texts = ["a red running shoe", "a blue teapot", "green garden hose"]
        engine.add([Item.create(f"p{i}", text=t) for i, t in enumerate(texts)])


def _search(args: list[str]) -> dict[str, Any]:
    from mcp.client.stdio import StdioServerParameters, get_default_environment

    from tests.test_serve_mcp import structured

    env = {**get_default_environment(), **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    params = StdioServerParameters(command=sys.executable, args=["-m", "xmodal.serve", *args], env=env)

    async def main() -> dict[str, Any]:
        async with mcp.Client(params) as client:
            result = await client.call_tool("search", {"text": "a blue teapot", "k": 1, "mode": "dense"})
            return {"error": result.content[0].text} if result.is_error else structured(result)

    return asyncio.run(main())


def test_mcp_config_supplies_the_encoder_options_of_the_root_and_of_a_named_index(tmp_path: Path) -> None:
    behaviour = Behaviour(key=KEY)
    with fake_server(behaviour) as url:
        _index(tmp_path / "root", url)
        _index(tmp_path / "docs", url)
        root_config = tmp_path / "root.toml"
        root_config.write_text(f'encoder = "http-embeddings"\n[encoder_options]\napi_key = "{KEY}"\n', encoding="utf-8")
        named_config = tmp_path / "named.toml"
        named_config.write_text(
            f'[indexes]\ndocs = {{ path = "{tmp_path / "docs"}", encoder = "http-embeddings", '
            f'encoder_options = {{ api_key = "{KEY}" }} }}\n',
            encoding="utf-8",
        )
        before = len(behaviour.requests)
        without = _search(["mcp", "--index", str(tmp_path / "root")])  # no key: the server refuses the query
        root = _search(["mcp", "--index", str(tmp_path / "root"), "--config", str(root_config)])
        named = _search(["mcp", "--config", str(named_config), "--index-name", "docs"])
    assert "error" in without and "api_key" in without["error"]
    assert root["hits"][0]["data"]["id"] == "p1"
    assert named["hits"][0]["data"]["id"] == "p1"
    sent = behaviour.headers[before:]
    assert [h.get("Authorization") for h in sent].count(f"Bearer {KEY}") == 2  # the two configured queries
