"""Collection operations over REST against a real server on 127.0.0.1: count, offset, delete by filter,
clear and attribute updates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402
from .test_collection_ops import CountingEncoder  # noqa: E402

WRITER, READER = "write-key-0001", "read-key-00001"
KEYS = (ApiKey(WRITER, frozenset({"write", "read"}), "writer"), ApiKey(READER, frozenset({"read"}), "reader"))
W, R = {"Authorization": f"Bearer {WRITER}"}, {"Authorization": f"Bearer {READER}"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Engine, CountingEncoder]]:
    encoder = CountingEncoder()
    engine = Engine.open(tmp_path / "idx", encoder=encoder, index="exact")
    engine.add(text_items(20))
    with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS))) as url:
        yield url, engine, encoder
    engine.close()


def test_count(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, _, _ = served
    assert httpx.post(f"{url}/count", json={}, headers=R).json() == {"count": 20}
    r = httpx.post(f"{url}/count", json={"filters": {"color": {"in": ["red", "blue"]}}}, headers=R)
    assert r.status_code == 200 and r.json() == {"count": 10}
    assert httpx.post(f"{url}/count", json={"filters": {"nope": 1}}, headers=R).json() == {"count": 0}
    r = httpx.post(f"{url}/count", json={"filters": {"nope": 1}, "strict": True}, headers=R)
    assert r.status_code == 422 and "nope" in r.text
    r = httpx.post(f"{url}/count", json={"filter": {"color": "red"}}, headers=R)
    assert r.status_code == 422 and "filter" in r.json()["error"] + str(r.json().get("field"))


def test_search_offset(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, _, _ = served
    body = {"text": "item thing", "filters": {"color": {"ne": "black"}}, "log": False}
    full = [h["id"] for h in httpx.post(f"{url}/search", json={**body, "k": 15}, headers=R).json()["hits"]]
    pages = [httpx.post(f"{url}/search", json={**body, "k": 5, "offset": o}, headers=R) for o in (0, 5, 10)]
    assert all(p.status_code == 200 for p in pages)
    assert [h["id"] for p in pages for h in p.json()["hits"]] == full and len(full) == 15
    past = httpx.post(f"{url}/search", json={**body, "k": 5, "offset": 100}, headers=R)
    assert past.status_code == 200 and past.json()["hits"] == []
    bad = httpx.post(f"{url}/search", json={**body, "k": 5, "offset": -1}, headers=R)
    assert bad.status_code == 422 and "offset" in bad.text
    bad = httpx.post(f"{url}/search", json={**body, "k": 10, "offset": 9_995}, headers=R)
    assert bad.status_code == 422 and bad.json()["field"] == "offset"


def test_delete_by_filter_and_clear(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, _ = served
    r = httpx.post(f"{url}/items/delete", json={"filters": {"color": "red"}}, headers=R)
    assert r.status_code == 403  # the write scope is needed
    r = httpx.post(f"{url}/items/delete", json={"filters": {}}, headers=W)
    assert r.status_code == 422 and "clear" in r.text and r.json()["field"] == "filters"
    r = httpx.post(f"{url}/items/delete", json={}, headers=W)
    assert r.status_code == 422 and '"all": true' in r.json()["fix"]
    r = httpx.post(f"{url}/items/delete", json={"filters": {"color": "red"}}, headers=W)
    assert r.status_code == 200 and r.json() == {"deleted": 5}
    hits = httpx.post(f"{url}/search", json={"text": "item red", "k": 100, "log": False}, headers=R).json()["hits"]
    assert len(hits) == 15 and all(h["attributes"]["color"] != "red" for h in hits)
    assert httpx.get(f"{url}/items/t0", headers=R).status_code == 404
    r = httpx.post(f"{url}/items/delete", json={"all": True}, headers=W)
    assert r.status_code == 200 and r.json() == {"deleted": 15}
    assert engine.count() == 0 and httpx.post(f"{url}/count", json={}, headers=R).json() == {"count": 0}


def test_patch_updates_attributes_without_encoding(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, encoder = served
    encoded, vectors = encoder.documents, engine.vectors("t2")
    r = httpx.patch(f"{url}/items/t2", json={"attributes": {"color": "gold"}}, headers=W)
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"color": "gold", "price": 2.0, "n": 2}
    assert encoder.documents == encoded
    assert all(np.array_equal(engine.vectors("t2")[k], v) for k, v in vectors.items())
    assert httpx.post(f"{url}/count", json={"filters": {"color": "gold"}}, headers=R).json() == {"count": 1}
    hits = httpx.post(
        f"{url}/search", json={"text": "item 2", "filters": {"color": "gold"}, "log": False}, headers=R
    ).json()["hits"]
    assert [h["id"] for h in hits] == ["t2"]
    r = httpx.patch(f"{url}/items/t2", json={"attributes": {"x": 1}, "merge": False}, headers=W)
    assert r.json()["attributes"] == {"x": 1}
    assert httpx.patch(f"{url}/items/t2", json={"attributes": {"x": 2}}, headers=R).status_code == 403
    assert httpx.patch(f"{url}/items/nope", json={"attributes": {"x": 2}}, headers=W).status_code == 404
    r = httpx.patch(f"{url}/items/t2", json={"attributes": {"span": 2}}, headers=W)
    assert r.status_code == 422 and r.json()["field"] == "attributes.span"
    assert httpx.patch(f"{url}/items/t2", json={}, headers=W).status_code == 422


def test_search_by_vector(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, _ = served
    vector = engine.vectors("t6")["text"].tolist()
    r = httpx.post(f"{url}/search", json={"vector": vector, "k": 3, "filters": {"color": "blue"}}, headers=R)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"][0]["id"] == "t6" and all(h["attributes"]["color"] == "blue" for h in body["hits"])
    assert body["query_id"] is None  # not logged: there is no query to learn from
    r = httpx.post(f"{url}/search", json={"vector": vector, "k": 2, "offset": 1, "log": False}, headers=R)
    full = httpx.post(f"{url}/search", json={"vector": vector, "k": 3}, headers=R).json()["hits"]
    assert [h["id"] for h in r.json()["hits"]] == [h["id"] for h in full[1:]]
    short = httpx.post(f"{url}/search", json={"vector": vector[:5]}, headers=R)
    assert short.status_code == 422 and short.json()["field"] == "vector" and "dimensions" in short.text
    nan = httpx.post(
        f"{url}/search", content=json.dumps({"vector": [float("nan"), *vector[1:]]}), headers={**R, **JSON}
    )
    assert nan.status_code == 400 and "NaN" in nan.json()["error"]  # not JSON at all
    numbers = ", ".join("1e999" if i == 3 else repr(x) for i, x in enumerate(vector))  # 1e999 parses as inf
    huge = '{"vector": [' + numbers + "]}"
    inf = httpx.post(f"{url}/search", content=huge, headers={**R, **JSON})
    assert inf.status_code == 422 and inf.json()["field"] == "vector" and "position 3" in inf.text
    both = httpx.post(f"{url}/search", json={"vector": vector, "text": "item"}, headers=R)
    assert both.status_code == 422 and both.json()["field"] == "text"
    mode = httpx.post(f"{url}/search", json={"vector": vector, "mode": "hybrid"}, headers=R)
    assert mode.status_code == 422 and mode.json()["field"] == "mode"
    words = httpx.post(f"{url}/search", json={"vector": ["a", "b"]}, headers=R)
    assert words.status_code == 422 and "vector" in words.text


def test_add_items_with_own_vectors(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, encoder = served
    encoded, dim = encoder.documents, engine.dim
    mine = [0.0] * dim
    mine[3] = 2.0
    items = [
        {"id": "own", "title": "whatever", "attributes": {"color": "teal"}, "vectors": {"text": mine}},
        {"id": "bare", "title": "whatever", "vectors": mine},
        {"id": "short", "title": "whatever", "vectors": {"text": mine[:-2]}},
        {"id": "kind", "title": "whatever", "vectors": {"sound": mine}},
        {"id": "words", "title": "whatever", "vectors": ["a"]},
    ]
    r = httpx.post(f"{url}/items", json={"items": items}, headers=W)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["own", "bare"] and encoder.documents == encoded
    reasons = {x["where"]: x["reason"] for x in body["rejected"]}
    assert f"vectors.text: has {dim - 2} dimensions, the index has {dim}" in reasons["short"]
    assert "vectors.sound" in reasons["kind"] and "vectors" in reasons["words"]
    hits = httpx.post(f"{url}/search", json={"vector": mine, "k": 2, "log": False}, headers=R).json()["hits"]
    assert {h["id"] for h in hits} == {"own", "bare"} and hits[0]["score"] > 0.99
