"""A media loader named by dotted path in data (a catalog line, an item, a query, a REST body) is refused before
anything is imported unless the index settings name it: data never chooses the code xmodal imports (issue 13,
hardening). ``tests/toyparts/canary.py`` is never named by any index, so it must never be imported."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from tests.test_third_party import cli
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError, ValidationError
from xmodal.media_loaders import media_loader

CANARY = "tests.toyparts.canary:Canary"
WRITER = "allowlist-writer-key"


def not_imported() -> bool:
    return "tests.toyparts.canary" not in sys.modules


def test_an_item_or_a_query_naming_an_unlisted_loader_is_refused_unimported() -> None:
    with pytest.raises(ValidationError) as caught:
        Item.create("x", title="t", media={CANARY: b"data"})
    assert caught.value.field == f"media.{CANARY}" and caught.value.item == "x"
    assert "index settings do not name" in caught.value.problem
    assert "index setting 'media'" in caught.value.fix and "xmodal.media" in caught.value.fix
    with pytest.raises(ValidationError) as caught:
        Query(text="t", media={CANARY: b"data"})
    assert caught.value.field == f"media.{CANARY}"
    with pytest.raises(ValidationError, match="modality"):
        Item.create("y", modality=f"{CANARY}+text", title="t")
    with pytest.raises(ConfigError, match="index settings do not name"):
        media_loader(CANARY)
    assert not_imported()


def test_the_cli_and_the_rest_api_refuse_an_unlisted_loader(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve import ApiKey, ServeConfig, create_app

    folder, index = tmp_path / "cat", tmp_path / "idx"
    folder.mkdir()
    (folder / "c.bin").write_bytes(b"data")
    lines = [{"id": "a", "title": "plain"}, {"id": "b", "title": "plain", "media": {CANARY: "c.bin"}}]
    (folder / "catalog.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = cli(index, "--encoder", "hashing", "--index-kind", "exact", "add", str(folder / "catalog.jsonl"), "--json")
    assert done.returncode == 1, done.stderr  # the line naming the loader is rejected, the other added
    report = json.loads(done.stdout)
    assert report["added"] == 1 and [r["where"].rsplit(":", 1)[1] for r in report["rejected"]] == ["2"]
    assert f"media.{CANARY}" in report["rejected"][0]["reason"]
    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"}), "writer"),), mcp=False, log_requests=False)
    with (
        Engine.open(index) as engine,
        TestClient(
            create_app(engine, config), headers={"Authorization": f"Bearer {WRITER}"}, base_url="http://localhost"
        ) as client,
    ):
        body = {"id": "c", "title": "plain", "media_base64": {CANARY: base64.b64encode(b"data").decode()}}
        r = client.post("/items", json={"items": [body]})
        assert r.status_code in (200, 422), r.text
        answer = r.json()
        assert f"media.{CANARY}" in json.dumps(answer) and "c" not in answer.get("added", []), answer
        r = client.post("/items", json={"items": [{"id": "d", "modality": f"{CANARY}+text", "title": "t"}]})
        assert r.status_code in (200, 422) and "d" not in r.json().get("added", []), r.text
        assert "c" not in engine and "d" not in engine
    assert not_imported()


def test_the_media_setting_must_list_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="media must be a list"):
        Engine.open(tmp_path / "idx", encoder=HashingEncoder(), media="pkg.mod:Loader")  # type: ignore[arg-type]
    assert not_imported()
