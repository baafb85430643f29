"""``POST /admin/reindex`` against a real server on 127.0.0.1: admin only; the build runs in the background
while searches are served with no error, writes made meanwhile reach the new vectors, the switch serves the
index with the new encoder at once, and abort drops a build."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from tests.conftest import text_items  # noqa: E402
from xmodal import Engine  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ADMIN, WRITER = "admin-key-0001", "write-key-0001"
KEYS = (ApiKey(ADMIN, frozenset({"admin"}), "admin"), ApiKey(WRITER, frozenset({"write", "read"}), "writer"))
A, W = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {WRITER}"}


def _wait(url: str, done: Any, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.post(f"{url}/admin/reindex", json={"action": "status"}, headers=A, timeout=30).json()
        if done(status):
            return dict(status)
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


class Searcher(threading.Thread):
    """Searches the server in a loop until stopped, counting answers and errors."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.ok = url, threading.Event(), 0
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                answer = client.post(
                    f"{self.url}/search", json={"text": "item 7 black", "k": 5, "mode": "dense"}, headers=W
                )
                if answer.status_code == 200 and answer.json()["hits"]:
                    self.ok += 1
                else:
                    self.errors.append(f"{answer.status_code} {answer.text[:200]}")


def test_reindex_over_rest_while_serving(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder="hashing", dim=64, index="exact") as engine:
        engine.add(text_items(3000))
    engine = Engine.open(tmp_path / "idx", index="exact")
    app = create_app(engine, ServeConfig(keys=KEYS))
    try:
        with serve_in_thread(app) as url:
            start = {"action": "start", "encoder": "hashing", "encoder_options": {"dim": 64, "seed": 1}, "batch": 100,
                     "share": 0.5}  # fmt: skip
            assert httpx.post(f"{url}/admin/reindex", json=start, headers=W).status_code == 403
            assert httpx.post(f"{url}/admin/reindex", json=start).status_code == 401
            bad = httpx.post(f"{url}/admin/reindex", json={**start, "encoder": "no-such-encoder"}, headers=A)
            assert bad.status_code in (400, 422) and "no-such-encoder" in bad.text
            odd = httpx.post(f"{url}/admin/reindex", json={**start, "encoder_options": {"colour": 1}}, headers=A)
            assert odd.status_code == 400 and "colour" in odd.json()["error"]
            idle = httpx.post(f"{url}/admin/reindex", json={"action": "status"}, headers=A).json()
            assert idle["state"] == "none" and idle["current"]["seed"] == 0
            searcher = Searcher(url)
            searcher.start()
            began = httpx.post(f"{url}/admin/reindex", json=start, headers=A, timeout=30)
            assert began.status_code == 200, began.text
            assert began.json()["next"]["seed"] == 1 and began.json()["state"] in ("building", "ready")
            again = httpx.post(f"{url}/admin/reindex", json=start, headers=A, timeout=30)
            assert again.status_code == 400 or again.json()["state"] == "ready"  # one build at a time
            added = httpx.post(f"{url}/items", json={"items": [{"id": "late", "title": "zebra crossing"}]}, headers=W)
            assert added.status_code == 200, added.text  # a write meanwhile: it reaches the new vectors
            ready = _wait(url, lambda s: s["state"] == "ready" and not s["running"])
            assert ready["done"] >= 3000 and ready["error"] is None
            switched = httpx.post(f"{url}/admin/reindex", json={"action": "switch"}, headers=A, timeout=60)
            assert switched.status_code == 200, switched.text
            assert switched.json()["reopened"] is True and switched.json()["switched"] is True
            time.sleep(0.2)
            searcher.stop.set()
            searcher.join(30)
            info = httpx.get(f"{url}/info", headers=W).json()
            assert info["encoder"]["seed"] == 1 and info["items"] == 3001
            hit = httpx.post(
                f"{url}/search", json={"text": "zebra crossing", "k": 1, "mode": "dense"}, headers=W
            ).json()
            assert hit["hits"][0]["id"] == "late"  # written during the build, found with the new vectors
            after = httpx.post(f"{url}/items", json={"items": [{"id": "after", "title": "violet kite"}]}, headers=W)
            assert after.status_code == 200, after.text  # the reopened engine takes writes
            # a second reindex, aborted
            start2 = {**start, "encoder_options": {"dim": 64, "seed": 2}}
            assert httpx.post(f"{url}/admin/reindex", json=start2, headers=A, timeout=30).status_code == 200
            aborted = httpx.post(f"{url}/admin/reindex", json={"action": "abort"}, headers=A, timeout=60)
            assert aborted.status_code == 200 and aborted.json() == {"aborted": True}
            none = httpx.post(f"{url}/admin/reindex", json={"action": "status"}, headers=A).json()
            assert none["state"] == "none" and none["current"]["seed"] == 1
            early = httpx.post(f"{url}/admin/reindex", json={"action": "switch"}, headers=A)
            assert early.status_code == 400 and "no reindex is under way" in early.json()["error"]
    finally:
        app.state.xmodal.default.engine.close()
        engine.close()
    assert searcher.ok > 0 and searcher.errors == []
    assert not (tmp_path / "idx" / "reindex").exists()
    with Engine.open(tmp_path / "idx") as reopened:
        assert reopened.info()["encoder"]["seed"] == 1 and len(reopened) == 3002
