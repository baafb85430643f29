"""Hit vectors, batch search and batch get over REST against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine  # noqa: E402
from xmodal.serve import ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402
from .test_collection_batch import CountingEncoder  # noqa: E402
from .test_serve_collection import KEYS, R  # noqa: E402


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Engine, CountingEncoder]]:
    encoder = CountingEncoder()
    engine = Engine.open(tmp_path / "idx", encoder=encoder, index="exact")
    engine.add(text_items(20))
    with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS, max_batch=50))) as url:
        yield url, engine, encoder
    engine.close()


def test_hit_vectors_only_when_asked(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, _ = served
    body = {"text": "word3 thing", "k": 3, "mode": "dense", "log": False}
    plain = httpx.post(f"{url}/search", json=body, headers=R).json()
    assert plain["hits"] and all("vector" not in h for h in plain["hits"]) and plain["query_id"] is None
    r = httpx.post(f"{url}/search", json={**body, "with_vectors": True}, headers=R)
    assert r.status_code == 200, r.text
    for hit in r.json()["hits"]:
        stored = engine.vectors(hit["id"])[hit["provenance"].split(":")[-1]]
        np.testing.assert_allclose(hit["vector"], stored, rtol=1e-6)
    vector = engine.vectors("t4")["text"].tolist()
    r = httpx.post(f"{url}/search", json={"vector": vector, "k": 1, "with_vectors": True}, headers=R)
    np.testing.assert_allclose(r.json()["hits"][0]["vector"], vector, rtol=1e-6)
    fields = {"text": (None, "word3"), "with_vectors": (None, "true"), "mode": (None, "dense")}
    form = httpx.post(f"{url}/search", files=fields, headers=R)  # multipart
    assert form.status_code == 200 and len(form.json()["hits"][0]["vector"]) == engine.dim


def test_batch_search_answers_in_order_with_one_encoder_call(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, encoder = served
    vector = engine.vectors("t6")["text"].tolist()
    queries = [
        {"text": "word1 thing", "mode": "dense", "k": 3},
        {"vector": vector, "k": 2},
        {"text": "item red", "filters": {"color": "red"}, "k": 4},
        {"vector": vector, "k": 1, "offset": 1},
        {"text": "word5", "mode": "dense", "k": 2},
    ]
    singles = [
        [h["id"] for h in httpx.post(f"{url}/search", json={**q, "log": False}, headers=R).json()["hits"]]
        for q in queries
    ]
    encoder.calls = 0
    r = httpx.post(f"{url}/search/batch", json={"queries": queries, "with_vectors": True}, headers=R)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [[h["id"] for h in res["hits"]] for res in results] == singles
    assert encoder.calls == 1  # the three text queries in one model call
    assert all("vector" in h for res in results for h in res["hits"])
    assert singles[1][1:] == singles[3]


def test_batch_search_logs_when_asked(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, _, _ = served
    queries = [{"text": "item"}, {"text": "thing"}]
    plain = httpx.post(f"{url}/search/batch", json={"queries": queries}, headers=R).json()["results"]
    assert [res["query_id"] for res in plain] == [None, None]
    logged = httpx.post(f"{url}/search/batch", json={"queries": queries, "log": True}, headers=R).json()["results"]
    assert all(res["query_id"] for res in logged)
    event = {"query_id": logged[1]["query_id"], "item_id": logged[1]["hits"][0]["id"]}
    assert httpx.post(f"{url}/feedback", json=event, headers=R).status_code == 200


@pytest.mark.parametrize(
    ("queries", "field"),
    [
        ([{"text": "a"}, {"text": "b", "target": "glyphs"}], "queries[1].target"),
        ([{"text": "a"}, {"text": "  "}], "queries[1].query"),
        ([{"text": "a"}, {"text": "b", "mode": "nope"}], "queries[1].mode"),
        ([{"text": "a"}, {"vector": [0.1, 0.2]}], "queries[1].vector"),
        ([{"text": "a"}, {"vector": [0.1], "text": "b"}], "queries[1].text"),
        ([{"text": "a"}, {"text": "b", "k": 0}], "queries.1.k"),
        ([], "queries"),
    ],
)
def test_batch_search_names_the_bad_query(
    served: tuple[str, Engine, CountingEncoder], queries: list[dict[str, object]], field: str
) -> None:
    url, _, _ = served
    r = httpx.post(f"{url}/search/batch", json={"queries": queries}, headers=R)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_batch_search_refuses_more_than_max_batch(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, _, _ = served
    r = httpx.post(f"{url}/search/batch", json={"queries": [{"text": "a"}] * 51}, headers=R)
    assert r.status_code == 413 and r.json()["field"] == "queries"


def test_batch_get(served: tuple[str, Engine, CountingEncoder]) -> None:
    url, engine, _ = served
    r = httpx.post(f"{url}/items/get", json={"ids": ["t3", "nope", "t1", "t3"]}, headers=R)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == ["t3", "t1"] and body["missing"] == ["nope"]
    assert "vectors" not in body["items"][0]
    assert body["items"][0] == httpx.get(f"{url}/items/t3", headers=R).json()
    r = httpx.post(f"{url}/items/get", json={"ids": ["t2"], "with_vectors": True}, headers=R)
    np.testing.assert_allclose(r.json()["items"][0]["vectors"]["text"], engine.vectors("t2")["text"], rtol=1e-6)
    r = httpx.post(f"{url}/items/get", json={"ids": [f"x{i}" for i in range(51)]}, headers=R)
    assert r.status_code == 413 and r.json()["field"] == "ids"
    r = httpx.post(f"{url}/items/get", json={"ids": "t1"}, headers=R)
    assert r.status_code == 422 and r.json()["field"] == "body.ids"
    assert httpx.get(f"{url}/items/get", headers=R).status_code == 404  # still an item id for GET
