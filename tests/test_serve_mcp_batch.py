"""The MCP batch and vector tools (search_many, search_by_vector) and hit vectors (with_vectors), in process
and over streamable HTTP with a read key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("mcp")

from xmodal import Engine, Query  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.mcp import NOTICE, build_mcp  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402
from .test_serve_mcp import structured  # noqa: E402
from .test_serve_mcp_collection import READER, call  # noqa: E402


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as eng:
        eng.add(text_items(16))
        yield eng


def ids(found: dict[str, Any]) -> list[str]:
    return [h["data"]["id"] for h in found["hits"]]


def test_search_with_vectors_returns_each_hits_stored_vector(engine: Engine) -> None:
    server = build_mcp(engine)
    plain = structured(call(server, "search", {"text": "item thing", "k": 3, "mode": "dense"}))
    assert all("vector" not in h for h in plain["hits"])
    got = structured(call(server, "search", {"text": "item thing", "k": 3, "mode": "dense", "with_vectors": True}))
    direct = engine.search("item thing", k=3, mode="dense", with_vectors=True)
    assert ids(got) == direct.hits.ids.tolist() and direct.vectors is not None
    for hit, vector in zip(got["hits"], direct.vectors, strict=True):
        assert "vector" not in hit["data"] and np.allclose(hit["vector"], vector, atol=1e-6)
        assert np.allclose(hit["vector"], engine.vectors(hit["data"]["id"])["text"], atol=1e-6)


def test_search_many_equals_single_searches_in_order(engine: Engine) -> None:
    server = build_mcp(engine)
    own = engine.vectors("t5")["text"].tolist()
    queries: list[dict[str, Any]] = [
        {"text": "word1 thing", "k": 3},
        {"text": "item red", "k": 2, "filters": {"color": "red"}, "mode": "dense"},
        {"vector": own, "k": 2},
        {"text": "word3", "k": 2, "offset": 1, "mode": "learned"},
        {"vector": own, "k": 2, "filters": {"color": {"ne": "blue"}}},
    ]
    got = structured(call(server, "search_many", {"queries": queries, "with_vectors": True}))
    assert got["notice"] == NOTICE and len(got["results"]) == len(queries)
    expected = [
        engine.search(Query(text="word1 thing", k=3)),
        engine.search(Query(text="item red", k=2, filters={"color": "red"}, mode="dense")),
        engine.search_by_vector(own, k=2),
        engine.search(Query(text="word3", k=2, offset=1, mode="learned")),
        engine.search_by_vector(own, k=2, filters={"color": {"ne": "blue"}}),
    ]
    for result, one in zip(got["results"], expected, strict=True):
        assert ids(result) == one.hits.ids.tolist()
        assert all(len(h["vector"]) == engine.dim for h in result["hits"])
    assert ids(got["results"][2])[0] == "t5"


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ([], "queries: must be a list of 1 to"),
        ([{"text": "a"}, {"text": "b", "k": 0}], r"queries\[1\]\.k"),
        ([{"text": "a"}, {"text": "b", "colour": "red"}], r"queries\[1\]\.colour: is not a query field"),
        ([{"vector": [0.1] * 384, "text": "b"}], r"queries\[0\]\.text: cannot be combined with a vector"),
        ([{"text": "a"}, {"vector": [0.1] * 7}], r"queries\[1\]\.vector"),
        ([{"text": "a", "mode": "nope"}], r"queries\[0\]\.mode"),
        (["just text"], r"queries\.0\s+Input should be a valid dictionary"),  # the SDK checks the type
    ],
)
def test_search_many_names_the_bad_query(engine: Engine, queries: Any, message: str) -> None:
    import re

    out = call(build_mcp(engine), "search_many", {"queries": queries})
    assert out.is_error and re.search(message, out.content[0].text), out.content[0].text


def test_search_by_vector_pages_and_checks_the_vector(engine: Engine) -> None:
    server = build_mcp(engine)
    own = engine.vectors("t9")["text"].tolist()
    first = structured(call(server, "search_by_vector", {"vector": own, "k": 3, "with_vectors": True}))
    assert ids(first)[0] == "t9" and np.allclose(first["hits"][0]["vector"], own, atol=1e-6)
    second = structured(call(server, "search_by_vector", {"vector": own, "k": 3, "cursor": first["next_cursor"]}))
    by_offset = structured(call(server, "search_by_vector", {"vector": own, "k": 3, "offset": 3}))
    assert ids(second) == ids(by_offset) and not set(ids(second)) & set(ids(first))
    wrong = call(server, "search_by_vector", {"vector": [0.5] * 10})
    assert wrong.is_error and "10 dimensions" in wrong.content[0].text


def test_batch_and_vector_tools_over_http_with_a_read_key(engine: Engine) -> None:
    app = create_app(engine, ServeConfig(keys=(ApiKey(READER, frozenset({"read"})),), log_requests=False))
    with serve_in_thread(app) as url:
        reader = {"Authorization": f"Bearer {READER}"}
        own = engine.vectors("t2")["text"].tolist()
        queries = [{"text": "item blue", "k": 2, "mode": "dense"}, {"vector": own, "k": 1}]
        got = structured(call(f"{url}/mcp", "search_many", {"queries": queries}, reader))
        assert ids(got["results"][0]) == engine.search("item blue", k=2, mode="dense").hits.ids.tolist()
        assert ids(got["results"][1]) == ["t2"]
        too_many = call(f"{url}/mcp", "search_many", {"queries": [{"text": "x"}] * 101}, reader)
        assert too_many.is_error and "split" in too_many.content[0].text
