"""Processes see each other's writes: a CLI ``add`` / ``delete`` while ``xmodal serve`` runs reaches the
server's searches and ``/health`` within a second; a read-only CLI search changes no file of the index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve.testing import free_port, spawn_server  # noqa: E402

FAST = ["--encoder", "hashing", "--index-kind", "exact"]
VISIBLE_WITHIN = 1.0  # seconds (issue 12's target)


def cli(index: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", str(index), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def within(seconds: float, check: Callable[[], bool]) -> float:
    """Poll ``check`` until it holds; returns how long that took (fails after ``seconds``)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not visible within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"lamp{i}", title=f"brass desk lamp {i}") for i in range(12)])
    port = free_port()
    proc = spawn_server(index, port, env={"XMODAL_API_KEYS": "reader-key-01:read"})
    try:
        yield index, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_writes_reach_a_running_server(served: tuple[Path, str], tmp_path: Path) -> None:
    index, url = served
    headers = {"Authorization": "Bearer reader-key-01"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:

        def ids(mode: str, k: int = 5) -> list[str]:
            r = client.post("/search", json={"text": "brass desk lamp", "k": k, "mode": mode, "log": False})
            assert r.status_code == 200, r.text
            return [h["id"] for h in r.json()["hits"]]

        assert client.get("/health").json()["items"] == 12
        catalog = tmp_path / "new.jsonl"
        catalog.write_text(json.dumps({"id": "newlamp", "title": "brass desk lamp new"}) + "\n")
        cli(index, *FAST, "add", str(catalog))
        within(VISIBLE_WITHIN, lambda: client.get("/health").json()["items"] == 13)
        within(VISIBLE_WITHIN, lambda: "newlamp" in ids("dense", k=13))
        assert "newlamp" in ids("lexical", k=13)  # the extensions heard of it too

        gone = ids("dense", k=1)[0]
        cli(index, *FAST, "delete", gone)
        within(VISIBLE_WITHIN, lambda: client.get("/health").json()["items"] == 12)
        for mode in ("dense", "learned", "lexical"):
            found = ids(mode, k=5)
            assert gone not in found and len(found) == 5, (mode, found)
        assert client.get(f"/items/{gone}").status_code == 404


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of the index folder with its size and modification time (SQLite's transient files aside)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_a_read_only_cli_search_changes_no_file(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"t{i}", title=f"garden hose {i}", attributes={"n": i}) for i in range(30)])
        result = engine.search("garden hose", log=True)
        assert result.query_id is not None
        engine.feedback(result.query_id, result.hits.ids[0], "click")
    before = _snapshot(index)
    time.sleep(0.05)  # a rewrite would show in the modification time
    for mode in ("learned", "dense", "lexical"):
        cli(index, "search", "garden hose", "--mode", mode, "-k", "3", "--json")
    cli(index, "get", "t1", "--json")
    assert _snapshot(index) == before
