"""Cursor pagination and scroll over REST against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

from .conftest import text_items  # noqa: E402
from .test_serve_collection import KEYS, READER, R  # noqa: E402


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    engine = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    engine.add(text_items(20))
    with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS))) as url:
        yield url, engine
    engine.close()


def test_search_cursor(served: tuple[str, Engine]) -> None:
    url, _ = served
    body: dict[str, Any] = {"text": "item thing", "k": 6, "mode": "dense", "log": False}
    pages, cursor = [], None
    while True:
        r = httpx.post(f"{url}/search", json={**body, "cursor": cursor}, headers=R)
        assert r.status_code == 200, r.text
        pages.append([h["id"] for h in r.json()["hits"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    offsets = [
        [h["id"] for h in httpx.post(f"{url}/search", json={**body, "offset": o}, headers=R).json()["hits"]]
        for o in (0, 6, 12, 18)
    ]
    assert pages == offsets and sum(map(len, pages)) == 20
    first = httpx.post(f"{url}/search", json=body, headers=R).json()["next_cursor"]
    other = httpx.post(f"{url}/search", json={**body, "text": "other", "cursor": first}, headers=R)
    assert other.status_code == 422 and other.json()["field"] == "cursor" and "another query" in other.text
    both = httpx.post(f"{url}/search", json={**body, "offset": 6, "cursor": first}, headers=R)
    assert both.status_code == 422 and both.json()["field"] == "cursor"
    bad = httpx.post(f"{url}/search", json={**body, "cursor": "garbage"}, headers=R)
    assert bad.status_code == 422 and "damaged or cut" in bad.json()["error"] and bad.json()["fix"]


def test_cursor_of_another_index(served: tuple[str, Engine], tmp_path: Path) -> None:
    url, _ = served
    with Engine.open(tmp_path / "other", encoder=HashingEncoder(), index="exact") as other:
        other.add(text_items(20))
        cursor = other.search("item thing", k=6, mode="dense").next_cursor
    r = httpx.post(f"{url}/search", json={"text": "item thing", "k": 6, "mode": "dense", "cursor": cursor}, headers=R)
    assert r.status_code == 422 and r.json()["field"] == "cursor" and "another index" in r.json()["error"]


def test_scroll(served: tuple[str, Engine]) -> None:
    url, engine = served
    ids, cursor = [], None
    while True:
        body = {"filters": {"color": {"in": ["red", "blue"]}}, "limit": 3, "cursor": cursor}
        r = httpx.post(f"{url}/scroll", json=body, headers=R)
        assert r.status_code == 200, r.text
        assert all("vectors" not in item for item in r.json()["items"])
        ids += [item["id"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert ids == [f"t{i}" for i in range(20) if i % 4 in (0, 2)]
    r = httpx.post(f"{url}/scroll", json={"limit": 2, "with_vectors": True}, headers=R)
    item = r.json()["items"][1]
    assert item["id"] == "t1" and item == {**httpx.get(f"{url}/items/t1", headers=R).json(), "vectors": item["vectors"]}
    np.testing.assert_allclose(item["vectors"]["text"], engine.vectors("t1")["text"], rtol=1e-6)
    r = httpx.post(
        f"{url}/scroll", json={"limit": 2, "cursor": r.json()["next_cursor"], "filters": {"n": 1}}, headers=R
    )
    assert r.status_code == 422 and r.json()["field"] == "cursor"
    assert httpx.post(f"{url}/scroll", json={"limit": 0}, headers=R).status_code == 422
    assert httpx.post(f"{url}/scroll", json={}, headers=R).json()["next_cursor"] is None  # 20 items, one page


def test_the_python_client_pages_by_cursor(served: tuple[str, Engine]) -> None:
    from xmodal import Client
    from xmodal.errors import ValidationError

    url, engine = served
    with Client(url, api_key=READER) as client:
        first = client.search("item thing", k=6, mode="dense")
        second = client.search("item thing", k=6, mode="dense", cursor=first.next_cursor)
        assert second.hits.ids.tolist() == engine.search("item thing", k=6, mode="dense", offset=6).hits.ids.tolist()
        vector = engine.vectors("t2")["text"]
        page = client.search_by_vector(vector, k=4)
        more = client.search_by_vector(vector, k=4, cursor=page.next_cursor)
        assert more.hits.ids.tolist() == engine.search_by_vector(vector, k=4, offset=4).hits.ids.tolist()
        with pytest.raises(ValidationError, match="cursor"):
            client.search("other", k=6, mode="dense", cursor=first.next_cursor)
