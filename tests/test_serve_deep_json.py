"""A REST body that nests deeper than the limit is a 400 naming the body, never a 500: neither the parser
nor the surrogate check that follows it (for a body with a ``\\u`` escape) recurses (issue 13, follow-up to 9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine
from xmodal.encoders import HashingEncoder

pytest.importorskip("fastapi")

WRITER = "deep-json-writer-key"


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from xmodal.serve import ApiKey, ServeConfig, create_app

    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"}), "writer"),), mcp=False, log_requests=False)
    with (
        Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine,
        TestClient(
            create_app(engine, config),
            headers={"Authorization": f"Bearer {WRITER}"},
            base_url="http://localhost",
            raise_server_exceptions=False,
        ) as client,
    ):
        yield client


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [100, 950, 5000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_a_deep_body_with_an_escape_is_a_400(client: Any, depth: int, kind: str) -> None:
    searches = '{"text": "caf\\u00e9", "log": false, "filters": ' + nested(depth, kind) + "}"
    items = '{"items": [{"id": "x", "title": "caf\\u00e9", "attributes": {"a": ' + nested(depth, kind) + "}}]}"
    for route, body in (("/search", searches), ("/items", items)):
        r = client.post(route, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (route, r.status_code, r.text[:300])
        answer = r.json()
        assert "nested too deeply" in answer["error"] and answer["field"] == "body", answer
        assert answer["fix"] == "flatten the structure"


def test_a_body_within_the_limit_still_works(client: Any) -> None:
    r = client.post("/items", json={"items": [{"id": "x", "title": "café", "attributes": {"colour": "red"}}]})
    assert r.status_code == 200, r.text
    r = client.post("/search", json={"text": "café", "log": False, "filters": {"colour": "red"}})
    assert r.status_code == 200 and [h["id"] for h in r.json()["hits"]] == ["x"], r.text
