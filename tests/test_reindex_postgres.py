"""``xmodal reindex`` on an index whose store is PostgreSQL is refused, saying why and the fix, and leaves the
index as it was; the fix it names (the catalog added to a new schema with the new encoder) works end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import text_items
from xmodal import Engine
from xmodal.cli import main

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")


def _url(server: Any, schema: str, state: Path) -> str:
    return f"{server.url}?schema={schema}&state={state}"


def test_reindex_on_postgres_is_refused_with_the_fix_and_the_fix_works(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(postgres_server, postgres_schema, tmp_path / "state")
    catalog = tmp_path / "catalog.jsonl"
    lines = [{"id": i.id, "title": i.title, "text": i.text, "attributes": dict(i.attributes)} for i in text_items(30)]
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["--index", url, "add", str(catalog), "--encoder", "hashing", "--dim", "64", "-q"]) == 0
    with Engine.open(url) as engine:
        before = engine.info()["encoder"]
    capsys.readouterr()
    for command in (["reindex", "--encoder", "hashing", "--encoder-option", "seed=1"], ["reindex", "--status"],
                    ["reindex", "--switch"], ["eval", str(tmp_path / "q.jsonl"), "--encoder", "next"]):  # fmt: skip
        (tmp_path / "q.jsonl").write_text(json.dumps({"query": "item 1", "relevant": ["t1"]}) + "\n")
        assert main(["--index", url, *command]) == 1, command
        err = capsys.readouterr().err
        assert "keeps its items in PostgreSQL" in err and "add CATALOG --encoder NAME" in err and "schema=NEW" in err
    with Engine.open(url) as engine:  # untouched
        assert engine.info()["encoder"] == before and engine.count() == 30
    # the fix the message names: the catalog added to a new schema with the new encoder, searched there
    new = _url(postgres_server, f"{postgres_schema}_new", tmp_path / "state-new")
    assert main(["--index", new, "add", str(catalog), "--encoder", "hashing", "--encoder-option", "seed=1", "-q"]) == 0
    capsys.readouterr()
    assert main(["--index", new, "search", "item 7 black", "--mode", "dense", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["id"] == "t7"
    with Engine.open(new) as engine:
        assert engine.count() == 30 and engine.info()["encoder"]["seed"] == 1


def test_the_rest_route_refuses_a_postgres_store_with_the_fix(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    url = _url(postgres_server, postgres_schema, tmp_path / "state")
    admin = {"Authorization": "Bearer admin-key-0001"}
    with Engine.open(url, encoder="hashing", dim=64) as engine:
        engine.add(text_items(5))
        app = create_app(engine, ServeConfig(keys=(ApiKey("admin-key-0001", frozenset({"admin"})),)))
        with serve_in_thread(app) as served:
            body = {"action": "start", "encoder": "hashing", "encoder_options": {"seed": 1}}
            answer = httpx.post(f"{served}/admin/reindex", json=body, headers=admin)
            found = httpx.post(f"{served}/search", json={"text": "item 3", "k": 1}, headers=admin)
    assert answer.status_code == 400 and "keeps its items in PostgreSQL" in answer.json()["error"]
    assert "add CATALOG --encoder NAME" in answer.json()["error"]
    assert found.status_code == 200 and found.json()["hits"]
