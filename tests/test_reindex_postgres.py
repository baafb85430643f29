"""``xmodal reindex`` on an index whose store is PostgreSQL, against a real server: the new vectors are built in
the schema's ``reindex_next_*`` tables while the old ones serve (resumable after a kill, writes made meanwhile
replayed), ``eval --encoder next`` scores them, ``--switch`` is one transaction (``kill -9`` at six points
leaves exactly one encoder), ``--abort`` drops the tables, and every other engine of the store follows the
switch: none ever pairs one encoder's queries with the other's vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_reindex import NEW, OLD, SRC, items
from xmodal import ConfigError, Engine, Item
from xmodal.cli import main
from xmodal.encoders import Content, create_encoder
from xmodal.migration import Reindex
from xmodal.migration.faults import FAULT_ENV
from xmodal.store.postgres import PostgresStore

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")

NEW_OPTIONS = ["--encoder-option", "dim=64", "--encoder-option", "seed=3"]


def _url(server: Any, schema: str, state: Path) -> str:
    return f"{server.url}?schema={schema}&state={state}"


def make_index(server: Any, schema: str, tmp_path: Path, n: int = 120) -> str:
    url = _url(server, schema, tmp_path / "state-maker")
    with Engine.open(url, encoder="hashing", encoder_options=OLD, extensions=["ltr", "genret"]) as engine:
        engine.add(items(n))
    return _url(server, schema, tmp_path / "state")


def next_tables(server: Any, schema: str) -> list[str]:
    store = PostgresStore(server.url, schema)
    try:
        found = store.read("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (schema,))
        return [str(name) for (name,) in found if str(name).startswith("reindex_next_")]
    finally:
        store.close()


def assert_one_encoder(server: Any, schema: str, tmp_path: Path, state: str = "state-check") -> int:
    """Every stored vector is exactly what the recorded encoder makes of its item (never a mix), and a fresh
    engine serves them."""
    store = PostgresStore(server.url, schema)
    try:
        config = store.get_meta("settings")["encoder"]
        vectors = {s.item.id: (s.item, s.vectors) for s in store.iter_all()}
    finally:
        store.close()
    enc = create_encoder("hashing", **{k: v for k, v in config.items() if k != "name"})
    for item, by_kind in vectors.values():
        expected = enc.encode_documents([Content(text=item.document_text)])[0]
        assert set(by_kind) == {"text"}
        np.testing.assert_allclose(by_kind["text"], expected, atol=1e-5)
    with Engine.open(_url(server, schema, tmp_path / state)) as engine:
        assert engine.dim == config["dim"] and len(engine) == len(vectors)
        assert_serves_its_vectors(engine, vectors)
    return int(config["dim"])


def assert_serves_its_vectors(engine: Engine, vectors: dict[str, Any] | None = None) -> None:
    """``engine``'s encoder and served vectors agree: the best score of a query equals the best over the
    stored vectors encoded by that same encoder (so no query meets another encoder's vectors)."""
    if vectors is None:
        vectors = {s.item.id: (s.item, s.vectors) for s in engine.store.iter_all()}
    query = engine.encoder.encode_queries([Content(text="blue car")])[0]
    expected = {
        item_id: engine.encoder.encode_documents([Content(text=item.document_text)])[0]
        for item_id, (item, _) in vectors.items()
    }
    best = max(float(v @ query) for v in expected.values())
    hits = engine.search_vector(query, k=3)
    assert abs(float(hits.scores[0]) - best) < 1e-4


def cli(url: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop(FAULT_ENV, None)
    if fault is not None:
        env[FAULT_ENV] = fault
    command = [sys.executable, "-m", "xmodal.cli", "--index", url, *args]
    return subprocess.run(command, env=env, capture_output=True, timeout=180)


def test_cli_end_to_end_resume_eval_switch(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_index(postgres_server, postgres_schema, tmp_path)
    killed = cli(url, "reindex", "--encoder", "hashing", *NEW_OPTIONS, "--batch", "50", "-q", fault="batch")
    assert killed.returncode == -9, killed.stderr.decode()  # killed right after its first batch committed
    assert next_tables(postgres_server, postgres_schema) == [
        "reindex_next_failures",
        "reindex_next_meta",
        "reindex_next_vectors",
    ]
    capsys.readouterr()
    assert main(["--index", url, "reindex", "--status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["done"], status["total"]) == ("building", 50, 120)
    with Engine.open(url) as engine:  # writes meanwhile: an update below the cursor, an add, a delete
        assert engine.info()["reindex"]["done"] == 50
        engine.add([Item.create("i1", title="white boat renamed"), Item.create("late", title="green tree late")])
        engine.delete(["i2"])
    resumed = cli(url, "reindex", "--batch", "50", "-q")  # a new process resumes: no --encoder needed
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert main(["--index", url, "reindex", "--status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["done"], status["changes_behind"]) == ("ready", 121, 0)
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "blue car number 6", "relevant": ["i6"]}) + "\n")
    assert main(["--index", url, "eval", str(queries), "--encoder", "both", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["current"]["queries"] == report["next"]["queries"] == 1
    assert report["next"]["recall@1"] == report["current"]["recall@1"] == 1.0
    switched = cli(url, "reindex", "--switch", "--json")
    assert switched.returncode == 0, switched.stderr.decode()
    assert json.loads(switched.stdout)["switched"] is True
    assert next_tables(postgres_server, postgres_schema) == []
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path) == 64
    with Engine.open(url) as engine:
        assert engine.get("i1").title == "white boat renamed" and "i2" not in engine and "late" in engine
        assert engine.search("white boat renamed", k=1, mode="dense").items[0].id == "i1"
        assert set(engine.info()["stale"]) == {"genret", "ltr"} and "reindex" not in engine.info()


@pytest.mark.parametrize("point", ["prepared", "locked", "deleted", "copied", "written", "committed"])
def test_kill_9_during_switch_leaves_one_encoder(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, point: str
) -> None:
    url = make_index(postgres_server, postgres_schema, tmp_path, 80)
    with Reindex(url) as job:
        job.start("hashing", NEW)
        job.run()
    with Engine.open(url) as engine:  # a change the switch must replay itself
        engine.add([Item.create("fresh", title="black cat fresh")])
    done = cli(url, "reindex", "--switch", fault=point)
    assert done.returncode == -9, done.stderr.decode()
    dim = assert_one_encoder(postgres_server, postgres_schema, tmp_path)
    assert dim == (64 if point == "committed" else 32)
    assert bool(next_tables(postgres_server, postgres_schema)) == (point != "committed")
    with Reindex(url) as job:  # an interrupted switch runs again; a committed one left nothing to clean
        if point == "committed":
            assert job.status()["state"] == "none"
        else:
            job.switch()
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path, "state-check-2") == 64
    assert next_tables(postgres_server, postgres_schema) == []


def test_abort_drops_the_tables(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_index(postgres_server, postgres_schema, tmp_path, 30)
    args = ["--index", url, "reindex"]
    assert main([*args, "--encoder", "hashing", *NEW_OPTIONS, "-q"]) == 0
    assert len(next_tables(postgres_server, postgres_schema)) == 3
    with pytest.raises(ConfigError, match="--abort"):
        with Reindex(url) as job:
            job.start("hashing", {"dim": 48})
    assert main([*args, "--abort"]) == 0
    assert next_tables(postgres_server, postgres_schema) == []
    capsys.readouterr()
    assert main([*args, "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "none"
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path) == 32


def test_other_engines_of_the_store_follow_the_switch(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    url = make_index(postgres_server, postgres_schema, tmp_path, 200)
    server_a = Engine.open(_url(postgres_server, postgres_schema, tmp_path / "a"))
    server_b = Engine.open(_url(postgres_server, postgres_schema, tmp_path / "b"))
    errors: list[BaseException] = []
    served: list[int] = []
    stop = threading.Event()

    def search_all_along() -> None:  # server B searches through the build and the switch: never a mix
        while not stop.is_set():
            try:
                result = server_b.search("green tree", k=5, mode="dense")
                assert result.items[0].title.startswith("green tree")
                assert abs(float(result.hits.scores[0]) - 1.0) < 1e-4  # its query met vectors of its own encoder
                served.append(server_b.dim)
            except BaseException as exc:  # noqa: BLE001 - counted, then asserted
                errors.append(exc)
                return

    searcher = threading.Thread(target=search_all_along)
    try:
        searcher.start()
        with Reindex(url) as job:
            job.start("hashing", NEW)
            job.run(batch=40)
            server_a.add([Item.create("during", title="red apple during")])  # replayed by the switch
            assert server_a.dim == server_b.dim == 32  # the old vectors serve until the switch
            job.switch()
        server_b.follow_switch()  # (its listener may have done it already)
        assert server_b.dim == 64 and server_b.encoder.config()["seed"] == 3
        # A still holds the old encoder until it hears the notice; a write through it is refused, then it follows
        try:
            server_a.add([Item.create("after", title="black cat after")])
        except ConfigError as exc:
            assert "switched" in str(exc)
            server_a.add([Item.create("after", title="black cat after")])
        assert server_a.dim == 64
        server_b.add([Item.create("b-after", title="violet kite over the dunes")])  # the new encoder's vectors
        for engine in (server_a, server_b):
            engine.refresh()
            assert all(item_id in engine for item_id in ("during", "after", "b-after"))
            assert engine.search("violet kite over the dunes", k=1, mode="dense").items[0].id == "b-after"
            assert_serves_its_vectors(engine)
    finally:
        stop.set()
        searcher.join()
        server_a.close()
        server_b.close()
    assert not errors, errors[0]
    assert served.count(32) and served.count(64)  # it searched before and after the switch
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path) == 64


def test_reindex_over_rest_on_a_postgres_store(postgres_server: Any, postgres_schema: str, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    url = make_index(postgres_server, postgres_schema, tmp_path, 60)
    admin = {"Authorization": "Bearer admin-key-0001"}
    with Engine.open(url) as engine:
        app = create_app(engine, ServeConfig(keys=(ApiKey("admin-key-0001", frozenset({"admin"})),)))
        with serve_in_thread(app) as served:

            def call(body: dict[str, Any]) -> dict[str, Any]:
                answer = httpx.post(f"{served}/admin/reindex", json=body, headers=admin, timeout=60)
                assert answer.status_code == 200, answer.text
                return dict(answer.json())

            call({"action": "start", "encoder": "hashing", "encoder_options": NEW, "share": 1})
            for _ in range(600):
                status = call({"action": "status"})
                if status["state"] == "ready" and not status["running"]:
                    break
                assert status["error"] is None, status
                threading.Event().wait(0.05)
            switched = call({"action": "switch"})
            found = httpx.post(f"{served}/search", json={"text": "blue car number 1", "k": 1}, headers=admin)
            info = httpx.get(f"{served}/info", headers=admin).json()
    assert switched["reopened"] is True, switched
    assert found.status_code == 200 and found.json()["hits"]
    assert info["dim"] == 64 and info["encoder"]["seed"] == 3
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path) == 64


def test_an_add_encoded_while_the_engine_follows_a_switch_is_refused(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_index(postgres_server, postgres_schema, tmp_path, 40)
    with Reindex(url) as job:
        job.start("hashing", NEW)
        job.run()
    with Engine.open(url) as engine:
        old = engine.encoder
        encode = old.encode_documents

        def switch_meanwhile(batch: Any) -> Any:  # the switch lands (and is followed) while the add encodes
            with Reindex(url) as job:
                job.switch()
            assert engine.follow_switch() or engine.dim == 64
            return encode(batch)

        monkeypatch.setattr(old, "encode_documents", switch_meanwhile)
        with pytest.raises(ConfigError, match="switched"):
            engine.add([Item.create("late", title="violet kite late")])
        assert "late" not in engine
        engine.add([Item.create("late", title="violet kite late")])  # the retry uses the new encoder
        assert engine.search("violet kite late", k=1, mode="dense").items[0].id == "late"
    assert assert_one_encoder(postgres_server, postgres_schema, tmp_path) == 64
