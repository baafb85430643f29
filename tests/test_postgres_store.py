"""The PostgreSQL store beyond the conformance suite: several servers over one store (LISTEN/NOTIFY), the
``postgres://`` location, and a server that is down, too old or restarted mid-write."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import text_items
from xmodal import ConfigError, Engine, Item, Query, StorageError, ValidationError
from xmodal.cli import main
from xmodal.location import parse_postgres
from xmodal.store.analysis import terms
from xmodal.store.sqlite import SQLiteStore

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")

from xmodal.store import postgres  # noqa: E402
from xmodal.store.postgres import PostgresStore  # noqa: E402


def location(server: Any, schema: str, state: Path, **more: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"schema": schema, "state": str(state), **more}.items())
    return f"{server.url}?{params}"


def wait_for(done: Any, timeout: float) -> float:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"not done within {timeout} s")
        time.sleep(0.002)
    return time.perf_counter() - start


# -- several servers, one truth --------------------------------------------------------------------------
def test_a_write_on_one_engine_is_searchable_on_another_within_a_second(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    media = tmp_path / "shared-media"
    first = Engine.open(
        location(postgres_server, postgres_schema, tmp_path / "a", media=str(media)), encoder="hashing", dim=64
    )
    second = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b", media=str(media)))
    try:
        first.add(text_items(20))
        assert len(second) == 20 and second.encoder.dim == 64  # the settings come from the store
        first.add([Item.create("new", title="a bright orange kettle")])
        # LISTEN/NOTIFY: the second engine applies the write by itself, before any read asks it to
        took = wait_for(lambda: second.applied_seq() == first.applied_seq(), 1.0)
        assert took < 1.0
        assert second.search(Query(text="bright orange kettle", k=1)).hits.ids.tolist() == ["new"]
        second.delete(["new", "t0"])
        wait_for(lambda: first.applied_seq() == second.applied_seq(), 1.0)
        assert "new" not in first.search(Query(text="bright orange kettle", k=5)).hits.ids.tolist()
        assert len(first) == len(second) == 19
        # media go to the shared folder: a file added through one engine is read through the other
        from PIL import Image

        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "red.png")
        first.add([Item.create("pic", title="red square", image="red.png")], base_dir=tmp_path)
        ref = second.get("pic").media["image"]
        assert (media / str(ref)).is_file() and second.media.path(str(ref)).is_file()
    finally:
        first.close()
        second.close()


def test_two_servers_over_postgres_and_milvus(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, tmp_path: Path
) -> None:
    """``postgres://…?vectors=milvus://…``: the vectors in Milvus, the truth in PostgreSQL; the servers share one
    collection named from the store (each applies its own writes to it) and follow the store's change log."""
    vectors = f"milvus://127.0.0.1:{milvus_server.port}"
    first = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a", vectors=vectors), encoder="hashing")
    second = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b", vectors=vectors))
    try:
        assert type(first.backend).__name__ == type(second.backend).__name__ == "MilvusBackend"
        assert first.backend.collection == second.backend.collection  # type: ignore[attr-defined]
        first.add(text_items(12))
        wait_for(lambda: second.applied_seq() == first.applied_seq(), 1.0)
        found = second.search(Query(text="item 7 black", k=3, filters={"color": "black"}, mode="dense"))
        assert found.hits.ids.tolist()[0] == "t7" and set(found.hits.ids.tolist()) <= {"t3", "t7", "t11"}
    finally:
        second.close()
        first.backend.client.drop_collection(first.backend.collection)  # type: ignore[attr-defined]
        first.close()


def test_concurrent_writers_agree_on_rows_and_the_log(postgres_server: Any, postgres_schema: str) -> None:
    stores = [PostgresStore(postgres_server.url, postgres_schema) for _ in range(3)]
    try:
        vector = {"text": np.ones(4, np.float32)}

        def write(store: PostgresStore, worker: int) -> None:
            for i in range(15):
                store.put([(Item.create(f"shared{i}", title=f"w{worker}"), vector)])
                store.put([(Item.create(f"own{worker}-{i}", title="x"), vector)])

        threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stores[0].count() == 15 + 3 * 15
        log = stores[1].changes_since(0)
        assert len(log) == 3 * 30 and stores[2].last_seq() == len(log)
        rows = {stores[0].get(f"shared{i}").row for i in range(15)}  # type: ignore[union-attr]
        assert len(rows) == 15  # one row per id, whoever wrote it first
    finally:
        for s in stores:
            s.close()


def test_cli_writes_and_searches_through_a_postgres_url(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        "\n".join(json.dumps({"id": f"c{i}", "title": t}) for i, t in enumerate(["green tea", "black coffee"]))
    )
    url = location(postgres_server, postgres_schema, tmp_path / "state", vectors="local")
    assert main(["--index", url, "--encoder", "hashing", "add", str(catalog)]) == 0
    capsys.readouterr()
    other = location(postgres_server, postgres_schema, tmp_path / "other-state")
    assert main(["--index", other, "search", "black coffee", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "c1"


def test_the_same_bm25f_as_sqlite(postgres_server: Any, postgres_schema: str, tmp_path: Path) -> None:
    lite, pg = SQLiteStore(tmp_path / "s.sqlite"), PostgresStore(postgres_server.url, postgres_schema)
    try:
        items = [(item, {"text": np.ones(4, np.float32)}) for item in text_items(40)]
        assert lite.put(items) == pg.put(items)
        for query in ("item red", "word3 thing", "blue 7"):
            q = terms(query)
            ours, theirs = pg.fulltext.top(q, 10), lite.fulltext.top(q, 10)
            assert [r for r, _ in ours] == [r for r, _ in theirs] and ours
            np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-9)
            assert pg.fulltext.known_fraction(q) == lite.fulltext.known_fraction(q)
    finally:
        lite.close()
        pg.close()


# -- the location ------------------------------------------------------------------------------------------
def test_postgres_locations(tmp_path: Path) -> None:
    where = parse_postgres(
        f"postgres://u:secret@db:5433/x?schema=shop&vectors=milvus://mv:19531&media={tmp_path}/m&sslmode=disable"
    )
    assert where.schema == "shop" and where.media == tmp_path / "m" and where.backend == "milvus"
    assert where.backend_options == {"uri": "http://mv:19531"}
    assert where.dsn == "postgres://u:secret@db:5433/x?sslmode=disable"  # xmodal's own parameters removed
    assert parse_postgres("postgresql://db/x").backend is None
    with pytest.raises(ConfigError, match="vectors='ftp://x'"):
        parse_postgres("postgres://db/x?vectors=ftp://x")
    with pytest.raises(ConfigError, match="schema"):
        parse_postgres("postgres://db/x?schema=Bad-Name")
    with pytest.raises(ConfigError, match="no host") as caught:
        parse_postgres("postgres://u:secret@/x")
    assert "secret" not in str(caught.value)


# -- bad input ---------------------------------------------------------------------------------------------
def test_a_server_that_is_down_is_a_clear_error() -> None:
    from xmodal.backends.milvus_server import free_ports

    port = free_ports(1)[0]  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(StorageError, match=r"(?s)cannot connect to PostgreSQL.*check that the server runs"):
        PostgresStore(f"postgres://xmodal:pw@127.0.0.1:{port}/postgres")
    assert time.perf_counter() - start < 10


def test_the_password_never_shows(postgres_server: Any) -> None:
    with pytest.raises(StorageError) as caught:
        PostgresStore(postgres_server.url.replace("xmodal@", "nobody_here:s3cret@"))
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_an_unsupported_server_version_is_refused(
    postgres_server: Any, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "MIN_SERVER_VERSION", 990000)
    with pytest.raises(StorageError, match="is not supported; use PostgreSQL 99 or later"):
        PostgresStore(postgres_server.url, postgres_schema)


def test_a_newer_schema_is_refused(postgres_server: Any, postgres_schema: str) -> None:
    store = PostgresStore(postgres_server.url, postgres_schema)
    store.set_meta("schema_version", 99)
    store.close()
    with pytest.raises(StorageError, match="schema version 99"):
        PostgresStore(postgres_server.url, postgres_schema)


def test_bad_data_is_refused_whole(postgres_server: Any, postgres_schema: str) -> None:
    store = PostgresStore(postgres_server.url, postgres_schema)
    try:
        store.put([(Item.create("ok", title="fine"), {"text": np.ones(4, np.float32)})])
        with pytest.raises(ValidationError, match="item 'c': text: .*NUL"):  # PostgreSQL text cannot hold NUL
            store.put([(Item.create("b", title="fine too"), {}), (Item.create("c", title="x", text="a\x00b"), {})])
        assert store.count() == 1 and store.get("b") is None and store.last_seq() == 1
    finally:
        store.close()


def test_a_restart_mid_write_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """``kill -9`` of the server during a stream of writes, then a restart: the writes retry (bounded) on a new
    connection; every acknowledged write is there afterwards, each transaction whole; the listener reconnects."""
    from xmodal.store.postgres_server import LocalPostgres

    with LocalPostgres() as server:
        store = PostgresStore(server.url, retries=8)
        heard: list[int] = []
        store.listen(heard.append)
        wait_for(lambda: heard, 5.0)
        acknowledged: list[str] = []
        failures: list[BaseException] = []
        vector = {"text": np.ones(16, np.float32)}

        def write() -> None:
            for i in range(30):
                batch = [(Item.create(f"w{i}-{j}", title=f"batch {i}"), vector) for j in range(10)]
                try:
                    store.put(batch)
                    acknowledged.append(f"w{i}")
                except StorageError as exc:
                    failures.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        wait_for(lambda: len(acknowledged) >= 5, 10.0)
        server.kill()
        down = PostgresStore.__new__(PostgresStore)  # a second client while the server is down: a bounded wait
        start = time.perf_counter()
        with pytest.raises(StorageError, match="cannot connect"):
            down.__init__(server.url, retries=1)  # type: ignore[misc]
        assert time.perf_counter() - start < 10
        time.sleep(0.3)
        server.restart()
        writer.join(timeout=60)
        assert not writer.is_alive() and failures == [] and len(acknowledged) == 30
        assert store.count() == 30 * 10  # every batch whole (a retried one once: an upsert)
        for i in range(30):
            assert store.get(f"w{i}-9") is not None
        catalog = store.catalog_rows()
        assert len(set(catalog.ids)) == len(catalog.ids) == 300 and store.integrity() == []
        before = len(heard)
        store.put([(Item.create("after", title="after the restart"), vector)])
        wait_for(lambda: len(heard) > before and heard[-1] == store.last_seq(), 10.0)  # the listener is back
        store.close()


def test_a_server_finds_what_another_writer_added(postgres_server: Any, postgres_schema: str, tmp_path: Path) -> None:
    """`xmodal serve` over PostgreSQL: an add acknowledged by another writer (an engine: a CLI writer or another
    server) is found through the server at once, and a delete through the server is gone for the writer."""
    pytest.importorskip("fastapi", reason="the server needs fastapi: pip install 'xmodal[server]'")
    from xmodal.client import Client
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    key = "pg-writer-key-0001"
    keys = (ApiKey(key, frozenset({"read", "write"}), "writer", rate=1e6, burst=1_000_000),)
    writer = Engine.open(location(postgres_server, postgres_schema, tmp_path / "a"), encoder="hashing")
    served = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b"))
    try:
        with (
            serve_in_thread(create_app(served, ServeConfig(keys=keys, log_requests=False))) as url,
            Client(url, api_key=key) as client,
        ):
            for i in range(3):
                writer.add([Item.create(f"h{i}", title=f"harbour crane number {i}")])
                found = client.search(f"harbour crane number {i}", mode="dense", k=1)
                assert found.items[0].id == f"h{i}"  # no wait: the server reads the store's change log
            client.delete([f"h{i}" for i in range(3)])
            assert len(writer.search(Query(text="harbour crane", mode="dense")).hits.ids) == 0
    finally:
        writer.close()
        served.close()
