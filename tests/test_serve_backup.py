"""``POST /backup`` against a real server on 127.0.0.1: admin only, a new name inside the configured
``backup_dir`` (never a path), and the backup restores."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine  # noqa: E402
from xmodal.check import check  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.restore import restore  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ADMIN, WRITER = "admin-key-0001", "write-key-0001"
KEYS = (ApiKey(ADMIN, frozenset({"admin"}), "admin"), ApiKey(WRITER, frozenset({"write"}), "writer"))
A, W = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {WRITER}"}


def test_backup_route(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    backups = tmp_path / "backups"
    dest = backups / "bk-1"
    config = ServeConfig(keys=KEYS, backup_dir=str(backups))
    try:
        with serve_in_thread(create_app(engine, config)) as url:
            items = [{"id": f"i{n}", "title": f"thing {n}"} for n in range(10)]
            assert httpx.post(f"{url}/items", json={"items": items}, headers=W).status_code == 200
            refused = httpx.post(f"{url}/backup", json={"name": "bk-1"}, headers=W)
            assert refused.status_code == 403 and not dest.exists()
            assert httpx.post(f"{url}/backup", json={"name": "bk-1"}).status_code == 401
            for bad in ("../escape", "/abs", ".hidden", "a/b"):
                answer = httpx.post(f"{url}/backup", json={"name": bad}, headers=A)
                assert answer.status_code == 422 and answer.json()["field"] == "name", answer.text
            assert not (tmp_path / "escape").exists() and sorted(tmp_path.iterdir()) == [tmp_path / "idx"]
            done = httpx.post(f"{url}/backup", json={"name": "bk-1"}, headers=A, timeout=60)
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["items"] == 10 and body["files"] >= 2 and body["path"] == str(dest)
            again = httpx.post(f"{url}/backup", json={"name": "bk-1"}, headers=A)
            assert again.status_code == 422 and again.json()["field"] == "destination"
            assert "already exists" in again.json()["error"] and again.json()["fix"]
    finally:
        engine.close()
    restore(dest, tmp_path / "back")
    with Engine.open(tmp_path / "back") as restored:
        assert check(restored).ok and len(restored) == 10


def test_backup_route_is_off_without_a_backup_dir(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS))) as url:
            answer = httpx.post(f"{url}/backup", json={"name": "bk"}, headers=A)
    assert answer.status_code == 403 and answer.json()["field"] == "backup_dir" and "backup_dir" in answer.json()["fix"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
