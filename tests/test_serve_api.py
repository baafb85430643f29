"""The REST API against a real uvicorn server on 127.0.0.1 (hashing encoder, exact index)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from PIL import Image  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ADMIN, WRITER, READER, SLOW = "admin-key-0001", "write-key-0001", "read-key-00001", "slow-key-00001"
KEYS = (
    ApiKey(ADMIN, frozenset({"admin"}), "admin"),
    ApiKey(WRITER, frozenset({"write"}), "writer"),
    ApiKey(READER, frozenset({"read"}), "reader"),
    ApiKey(SLOW, frozenset({"read"}), "slow", rate=0.5, burst=2),
)


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A distinct small picture per seed (smooth gradients plus a seeded pattern)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    base = rng.integers(0, 255, 3)
    arr = np.stack([(base[c] + xx * (c + 1) * seed % 97 + yy * (3 - c)) % 256 for c in range(3)], -1)
    out = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    engine = Engine.open(tmp_path_factory.mktemp("serve") / "idx", encoder=HashingEncoder(), index="exact")
    config = ServeConfig(
        keys=KEYS,
        cors_origins=("http://example.test",),
        max_body_bytes=2_000_000,
        max_pixels=1_000_000,
        # one server for the whole module: with anonymous CPU metering on, every anonymous search of a test is
        # charged to the account the tests after it search with (0.1 CPU-second a second, a burst of 1), so a
        # test's 429s depended on what ran before it (one CI run refused a whole test's searches). Metering is
        # tested on servers of its own (tests/test_serve_limits.py).
        anonymous_cpu=0.0,
        anonymous_total_cpu=0.0,
    )
    with serve_in_thread(create_app(engine, config)) as url:
        items = [
            {
                "id": f"p{i}",
                "title": f"{color} shoe number {i}",
                "attributes": {"color": color, "price": 10 + i},
                "image_base64": base64.b64encode(png(i)).decode(),
            }
            for i, color in enumerate(["red", "blue", "green", "red"])
        ]
        items.append(
            {
                "id": "doc1",
                "title": "a guide to hiking boots",
                "text": "waterproof leather",
                "attributes": {"color": "brown"},
            }
        )
        r = httpx.post(f"{url}/items", json={"items": items}, headers=auth(WRITER))
        assert r.status_code == 200 and len(r.json()["added"]) == 5, r.text
        yield url, engine
    engine.close()


def test_search_text_returns_hits_with_urls_and_provenance(served: tuple[str, Engine]) -> None:
    url, _ = served
    r = httpx.post(f"{url}/search", json={"text": "hiking boots guide", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["hits"][0]["id"] == "doc1"
    assert body["hits"][0]["provenance"].startswith("dense:")
    assert body["query_id"]
    shoe = next(h for h in body["hits"] if h["id"].startswith("p"))
    assert shoe["thumbnail_url"] == f"/items/{shoe['id']}/thumbnail" and shoe["modality"] == "image+text"
    assert r.headers["x-request-id"]


def test_search_filters_and_explain(served: tuple[str, Engine]) -> None:
    url, _ = served
    r = httpx.post(
        f"{url}/search",
        json={"text": "shoe", "filters": {"color": "red", "price": {"lt": 12}}, "k": 5, "explain": True},
    )
    assert r.status_code == 200
    assert [h["id"] for h in r.json()["hits"]] == ["p0"]
    assert r.json()["explain"] is not None


def test_search_multipart_image_finds_the_same_image(served: tuple[str, Engine]) -> None:
    url, _ = served
    r = httpx.post(f"{url}/search", files={"image": ("q.png", png(2), "image/png")}, data={"k": "2", "target": "image"})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == "p2"
    assert r.json()["hits"][0]["score"] > 0.99
    both = httpx.post(f"{url}/search", files={"image": ("q.png", png(1), "image/png")}, data={"text": "blue shoe"})
    assert both.json()["hits"][0]["id"] == "p1"


def test_item_get_media_thumbnail_similar(served: tuple[str, Engine]) -> None:
    url, _ = served
    item = httpx.get(f"{url}/items/p1").json()
    assert item["title"] == "blue shoe number 1" and item["attributes"] == {"color": "blue", "price": 11}
    media = httpx.get(f"{url}{item['media_url']}")
    assert media.status_code == 200 and media.headers["content-type"] == "image/png" and media.content == png(1)
    thumb = httpx.get(f"{url}{item['thumbnail_url']}", params={"size": 32})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 32
    assert httpx.get(f"{url}{item['thumbnail_url']}", params={"size": 5000}).status_code == 422
    similar = httpx.get(f"{url}/items/p1/similar", params={"k": 3}).json()["hits"]
    assert "p1" not in [h["id"] for h in similar] and len(similar) == 3
    assert httpx.get(f"{url}/items/doc1/media").status_code == 404
    assert httpx.get(f"{url}/items/nope").status_code == 404


def test_item_and_hits_are_the_shared_view(served: tuple[str, Engine]) -> None:
    from xmodal.view import hit_view, item_view

    url, engine = served
    assert httpx.get(f"{url}/items/p1").json() == item_view(engine.get("p1"))
    hit = httpx.post(
        f"{url}/search", json={"text": "hiking boots guide", "k": 1, "mode": "dense", "log": False}
    ).json()["hits"][0]
    assert hit == hit_view(engine.get("doc1"), hit["score"], hit["provenance"])
    assert hit["image"] is None and hit["created_at"] > 0


def test_similar_is_engine_similar_and_checks_its_input(served: tuple[str, Engine]) -> None:
    url, engine = served
    for target in ("any", "image", "text"):
        r = httpx.get(f"{url}/items/p1/similar", params={"k": 2, "target": target})
        assert r.status_code == 200, r.text
        assert r.json()["hits"] == engine.similar("p1", k=2, target=target).to_dict()["hits"]
        kinds = {h["provenance"].removeprefix("similar:dense:") for h in r.json()["hits"]}
        assert kinds <= ({"text", "image", "combined"} if target == "any" else {target}), kinds
    bad = httpx.get(f"{url}/items/p1/similar", params={"target": "sound"})
    assert bad.status_code == 422 and "target" in bad.text
    assert httpx.get(f"{url}/items/p1/similar", params={"k": 0}).status_code == 422
    missing = httpx.get(f"{url}/items/nope/similar")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_search_without_a_mode_uses_the_index_default(served: tuple[str, Engine]) -> None:

    url, _ = served
    r = httpx.post(f"{url}/search", json={"text": "red shoe", "k": 3, "explain": True, "log": False}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["explain"]["mode"] == "learned"  # a new index's default mode setting
    dense = httpx.post(f"{url}/search", json={"text": "red shoe", "k": 3, "mode": "dense", "explain": True})
    assert dense.json()["explain"]["mode"] == "dense"
    unknown = httpx.post(f"{url}/search", json={"text": "red shoe", "mode": "psychic"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "mode"


def test_facets(served: tuple[str, Engine]) -> None:
    url, _ = served
    facets = httpx.get(f"{url}/facets").json()["attributes"]
    assert {"value": "red", "count": 2} in facets["color"]


def test_add_reports_rejections_and_keeps_valid_items(served: tuple[str, Engine]) -> None:
    url, engine = served
    items = [
        {"id": "ok1", "title": "fine"},
        {"id": "bad1", "title": 5},
        {"title": "no id"},
        {"id": "bad2", "image_base64": "!!notbase64"},
        {"id": "bad3", "image_base64": base64.b64encode(b"GIF89a trunc").decode()},
    ]
    r = httpx.post(f"{url}/items", json={"items": items}, headers=auth(WRITER))
    assert r.status_code == 200
    assert r.json()["added"] == ["ok1"]
    assert {rej["where"] for rej in r.json()["rejected"]} == {"bad1", "items[2]", "bad2", "bad3"}
    assert "ok1" in engine


def test_add_multipart_with_images(served: tuple[str, Engine]) -> None:
    url, engine = served
    items = [{"id": "mp1", "title": "uploaded", "image_file": "a.png"}, {"id": "mp2", "image_file": "missing.png"}]
    r = httpx.post(
        f"{url}/items",
        data={"items": json.dumps(items)},
        files=[("images", ("a.png", png(7), "image/png"))],
        headers=auth(WRITER),
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["mp1"] and r.json()["rejected"][0]["where"] == "mp2"
    assert engine.get("mp1").image is not None


def test_delete_then_gone(served: tuple[str, Engine]) -> None:
    url, engine = served
    httpx.post(f"{url}/items", json={"items": [{"id": "del me/ok", "title": "temporary"}]}, headers=auth(WRITER))
    assert httpx.get(f"{url}/items/del%20me/ok").json()["id"] == "del me/ok"
    r = httpx.delete(f"{url}/items/del%20me/ok", headers=auth(WRITER))
    assert r.json() == {"id": "del me/ok", "deleted": True}
    assert "del me/ok" not in engine
    assert httpx.delete(f"{url}/items/del%20me/ok", headers=auth(WRITER)).json()["deleted"] is False


def test_feedback_reaches_the_engine(served: tuple[str, Engine]) -> None:
    url, engine = served
    if not hasattr(engine, "feedback"):
        pytest.skip("Engine.feedback is not available in this build")

    search = httpx.post(f"{url}/search", json={"text": "red shoe", "k": 3}).json()
    qid, hit = search["query_id"], search["hits"][1]["id"]
    r = httpx.post(f"{url}/feedback", json={"query_id": qid, "item_id": hit, "event": "click", "position": 2})
    assert r.status_code == 200 and r.json() == {"recorded": True}
    events = engine.feedback_log.events(qid)
    assert [(e.item_id, e.event, e.position) for e in events] == [(hit, "click", 2)]
    bad = httpx.post(f"{url}/feedback", json={"query_id": "no-such-query", "item_id": hit})
    assert bad.status_code == 404


def test_keys_and_scopes(served: tuple[str, Engine]) -> None:
    url, _ = served
    one = {"items": [{"id": "k1", "title": "x"}]}
    missing = httpx.post(f"{url}/items", json=one)
    assert (
        missing.status_code == 401
        and "API key" in missing.json()["error"]
        and missing.headers["www-authenticate"] == "Bearer"
    )
    assert httpx.post(f"{url}/items", json=one, headers=auth("wrong-key-000")).status_code == 401
    read_only = httpx.post(f"{url}/items", json=one, headers=auth(READER))
    assert read_only.status_code == 403 and "write" in read_only.json()["error"]
    assert httpx.delete(f"{url}/items/p0", headers={"X-API-Key": READER}).status_code == 403
    assert httpx.post(f"{url}/items", json=one, headers={"X-API-Key": ADMIN}).status_code == 200
    assert httpx.post(f"{url}/search", json={"text": "x"}, headers=auth("wrong-key-000")).status_code == 401


def test_closed_reads_need_a_key(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        app = create_app(engine, ServeConfig(keys=KEYS, open_reads=False, mcp=False, log_requests=False))
        with serve_in_thread(app) as url:
            assert httpx.post(f"{url}/search", json={"text": "x"}).status_code == 401
            assert httpx.post(f"{url}/search", json={"text": "x"}, headers=auth(READER)).status_code == 200
            assert httpx.get(f"{url}/health").status_code == 200


def test_rate_limit_answers_429_with_retry_after(served: tuple[str, Engine]) -> None:
    url, _ = served
    codes = [httpx.get(f"{url}/facets", headers=auth(SLOW)) for _ in range(4)]
    assert [r.status_code for r in codes][:2] == [200, 200]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert httpx.get(f"{url}/facets", headers=auth(READER)).status_code == 200  # other keys are not affected


def test_cors_request_id_and_metrics(served: tuple[str, Engine]) -> None:
    url, _ = served
    pre = httpx.options(
        f"{url}/search", headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"}
    )
    assert pre.headers["access-control-allow-origin"] == "http://example.test"
    other = httpx.options(
        f"{url}/search", headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in other.headers
    assert httpx.get(f"{url}/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    text = httpx.get(f"{url}/metrics").text
    assert 'xmodal_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'xmodal_request_duration_seconds_bucket{le="+Inf",route="/search"}' in text
    assert "xmodal_index_items " in text and 'xmodal_errors_total{kind="client",route="/items"}' in text


def test_json_logs_carry_the_request_id(served: tuple[str, Engine]) -> None:
    url, _ = served
    from xmodal.serve.logs import JsonFormatter, logger

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    def logged() -> bool:
        records = [json.loads(line) for line in list(lines)]
        return any(r["request_id"] == "log-test-1" and r["route"] == "/health" and r["status"] == 200 for r in records)

    handler = Capture()
    logger.addHandler(handler)
    try:
        httpx.get(f"{url}/health", headers={"X-Request-ID": "log-test-1"})
        # The line is written once the response has gone out, so it may land just after the client returns.
        deadline = time.monotonic() + 5.0
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    assert logged()


def test_searches_stay_correct_while_items_churn(served: tuple[str, Engine]) -> None:
    """Deletes and re-adds racing with searches: never a 5xx, and every hit returned is a real item."""
    import threading

    url, _ = served
    ids = [f"churn{i}" for i in range(20)]
    httpx.post(
        f"{url}/items", json={"items": [{"id": i, "title": f"churn shoe {i}"} for i in ids]}, headers=auth(WRITER)
    )
    stop, problems = time.monotonic() + 2.0, []

    def churn() -> None:
        with httpx.Client(base_url=url, headers=auth(WRITER)) as client:
            n = 0
            while time.monotonic() < stop:
                client.delete(f"/items/{ids[n % 20]}")
                client.post("/items", json={"items": [{"id": ids[n % 20], "title": f"churn shoe {n}"}]})
                n += 1

    def search() -> None:
        # keyed: this test is about hits under churn, with a reader's key as a client would have
        with httpx.Client(base_url=url, headers=auth(READER)) as client:
            while time.monotonic() < stop:
                for r in (
                    client.post("/search", json={"text": "churn shoe", "k": 30, "log": False}),
                    client.get(f"/items/{ids[3]}/similar", params={"k": 25}),
                ):
                    if r.status_code >= 500 or (r.status_code == 200 and not all(h["title"] for h in r.json()["hits"])):
                        problems.append((r.status_code, r.text[:200]))

    threads = [threading.Thread(target=churn)] + [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []


def test_every_registered_mode_answers_without_a_server_error(served: tuple[str, Engine]) -> None:
    from xmodal.modes import available_modes

    url, _ = served
    for mode in available_modes():
        r = httpx.post(f"{url}/search", json={"text": "red shoe", "mode": mode, "k": 3, "explain": True}, timeout=60)
        assert r.status_code in (200, 501), (mode, r.status_code, r.text[:300])
        if r.status_code == 200:
            assert r.json()["hits"] and r.json()["explain"] is not None, mode
        else:
            assert r.json()["fix"], mode  # e.g. an untrained generative model says how to train it


def test_the_fix_of_a_404_leads_to_a_request_that_works(served: tuple[str, Engine]) -> None:
    url, _ = served
    for missing in (
        httpx.get(f"{url}/items/no-such-item"),
        httpx.post(f"{url}/feedback", json={"query_id": "nope", "item_id": "x"}),
    ):
        assert missing.status_code == 404, missing.text
        fix = missing.json()["fix"]
        assert "POST /search" in fix and "POST /feedback" in fix
    followed = httpx.post(f"{url}/search", json={"text": "red shoe", "k": 2})  # what the fix says to do
    assert followed.status_code == 200 and followed.json()["query_id"] and followed.json()["hits"]
    item = followed.json()["hits"][0]["id"]
    feedback = {"query_id": followed.json()["query_id"], "item_id": item}
    assert httpx.post(f"{url}/feedback", json=feedback).status_code == 200


def test_a_logged_search_keeps_its_plan_for_learning_and_shows_explain_only_when_asked(
    served: tuple[str, Engine],
) -> None:
    url, engine = served
    quiet = httpx.post(f"{url}/search", json={"text": "red shoe", "k": 3, "mode": "learned"}, timeout=30).json()
    assert quiet["query_id"] and quiet.get("explain") is None  # logged by default; no explanation sent
    imp = engine.feedback_log.impression(quiet["query_id"])
    assert imp.mode == "learned" and imp.plan and "length" in imp.context  # what learning from clicks needs
    assert imp.shown == tuple(h["id"] for h in quiet["hits"])
    asked = {"text": "red shoe", "k": 3, "mode": "learned", "explain": True}
    shown = httpx.post(f"{url}/search", json=asked, timeout=30).json()
    assert [h["id"] for h in shown["explain"]["hits"]] == [h["id"] for h in shown["hits"]]
    assert all(h["sources"] for h in shown["explain"]["hits"])  # each strategy's raw score is there
    queries = [{"text": "red shoe", "k": 2}, {"text": "boots", "k": 2}]
    many = httpx.post(f"{url}/search/batch", json={"queries": queries, "log": True}, timeout=30).json()["results"]
    assert all(r["query_id"] and r.get("explain") is None for r in many)
    logged = [engine.feedback_log.impression(r["query_id"]) for r in many]
    assert [i.query for i in logged] == ["red shoe", "boots"] and all(i.plan for i in logged)


def test_concurrent_logged_searches_each_get_their_own_committed_impression(served: tuple[str, Engine]) -> None:
    url, engine = served
    texts = [f"shoe number {i}" for i in range(24)]

    async def run() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            found = await asyncio.gather(*(client.post("/search", json={"text": t, "k": 2}) for t in texts))
        return [r.json() for r in found]

    bodies = asyncio.run(run())  # queued together on the writer: group-committed
    ids = [b["query_id"] for b in bodies]
    assert len(set(ids)) == len(texts)
    assert [engine.feedback_log.impression(q).query for q in ids] == texts
    click = {"query_id": ids[5], "item_id": bodies[5]["hits"][0]["id"]}
    assert httpx.post(f"{url}/feedback", json=click).status_code == 200
