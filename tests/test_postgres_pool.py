"""The postgres store's connection pool, against the real PostgreSQL server: threads share a bounded pool and run
side by side, an exhausted pool is a clear error naming its settings, LISTEN/NOTIFY keeps its own connection,
and a server restart under concurrent writers loses no acknowledged write."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import ConfigError, Item, StorageError
from xmodal.location import parse_postgres

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")
pytest.importorskip("psycopg_pool", reason="the postgres store needs psycopg_pool: pip install 'xmodal[postgres]'")

from xmodal.store.postgres import PostgresStore  # noqa: E402
from xmodal.store.postgres_pool import split_pool_options  # noqa: E402

VECTOR = {"text": np.ones(8, np.float32)}


def wait_for(done: Any, timeout: float) -> None:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"not done within {timeout} s")
        time.sleep(0.005)


def sleepers(store: PostgresStore, threads: int, seconds: float) -> float:
    """Wall time of ``threads`` threads each running one ``pg_sleep(seconds)`` through the store at once."""
    start = threading.Barrier(threads + 1)

    def sleep() -> None:
        start.wait()
        store.read("SELECT pg_sleep(%s)", (seconds,))

    workers = [threading.Thread(target=sleep) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def test_threads_share_a_bounded_pool_and_run_side_by_side(postgres_server: Any, postgres_schema: str) -> None:
    app = f"xm_{uuid.uuid4().hex[:8]}"  # this store's connections, as the server lists them
    store = PostgresStore(f"{postgres_server.url}?application_name={app}&pool_size=3", postgres_schema)
    single = PostgresStore(postgres_server.url, postgres_schema, pool_size=1)
    try:
        assert store.pool_size == 3 and single.pool_size == 1
        # three server-side sleeps of 0.4 s at once: side by side on three connections, in turn on one
        assert sleepers(store, 3, 0.4) < 1.0
        assert sleepers(single, 3, 0.4) >= 1.2
        failures: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(15):
                    rows = store.put([(Item.create(f"t{t}-{i}", title=f"thread {t} item {i}"), VECTOR)])
                    got = store.get_rows(rows)
                    assert got[rows[0]].item.id == f"t{t}-{i}"  # read back at once, on whatever connection
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(8)]  # more threads than connections
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert failures == []
        assert store.count() == single.count() == 8 * 15
        assert len(store.changes_since(0)) == 8 * 15 and store.integrity() == []
        seqs = [seq for (seq,) in store.read("SELECT seq FROM changes ORDER BY seq")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        (held,) = single.read("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", (app,))[0]
        assert 1 <= int(held) <= 3  # never more connections than pool_size
    finally:
        store.close()
        single.close()


def test_an_exhausted_pool_is_a_clear_error_and_the_listener_keeps_its_own_connection(
    postgres_server: Any, postgres_schema: str
) -> None:
    store = PostgresStore(postgres_server.url, postgres_schema, pool_size=1, pool_timeout=0.5)
    writer = PostgresStore(postgres_server.url, postgres_schema)
    heard: list[int] = []
    store.listen(heard.append)
    wait_for(lambda: heard, 5.0)
    holding, release = threading.Event(), threading.Event()

    def hold(cur: Any) -> None:
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=lambda: store.write_locked(hold, "holding", lock="test"))
    holder.start()
    try:
        assert holding.wait(5)
        start = time.perf_counter()
        with pytest.raises(StorageError, match=r"all 1 connections of the pool were busy for 0.5 s.*pool_size"):
            store.count()
        assert 0.4 < time.perf_counter() - start < 5
        # LISTEN/NOTIFY is not in the pool: a write by another process is heard while the pool is exhausted
        writer.put([(Item.create("heard", title="heard through the listener"), VECTOR)])
        wait_for(lambda: heard[-1] == writer.last_seq(), 5.0)
    finally:
        release.set()
        holder.join()
    assert store.count() == 1  # the connection came back to the pool
    store.close()
    writer.close()


def test_pool_settings_in_the_url_are_checked_and_kept_from_libpq(tmp_path: Path) -> None:
    dsn, options = split_pool_options("postgres://u@db:5432/x?sslmode=disable&pool_size=8&pool_timeout=2.5")
    assert dsn == "postgres://u@db:5432/x?sslmode=disable" and options == {"pool_size": 8, "pool_timeout": 2.5}
    assert split_pool_options("host=db dbname=x") == ("host=db dbname=x", {})
    for bad, name in (
        ("pool_size=0", "pool_size"),
        ("pool_size=two", "pool_size"),
        ("pool_timeout=-1", "pool_timeout"),
    ):
        with pytest.raises(ConfigError, match=rf"{name}=.*e\.g\. {name}="):
            split_pool_options(f"postgres://db/x?{bad}")
        with pytest.raises(ConfigError, match=name):
            parse_postgres(f"postgres://db/x?{bad}")
    plain = parse_postgres("postgres://db/x?schema=s")
    pooled = parse_postgres("postgres://db/x?schema=s&pool_size=16")
    assert pooled.state == plain.state  # the pool's size is no part of the index's identity
    assert pooled.dsn.endswith("pool_size=16")  # the store reads it from there


def test_a_restart_under_concurrent_writers_loses_no_acknowledged_write(caplog: pytest.LogCaptureFixture) -> None:
    """``kill -9`` of the server while four threads write through a pool of three connections, then a restart:
    each write is either acknowledged (and then there, whole) or a clear error; the pool reconnects."""
    from xmodal.store.postgres_server import LocalPostgres

    with LocalPostgres() as server:
        store = PostgresStore(server.url, retries=8, pool_size=3, pool_timeout=5)
        acknowledged: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def write(t: int) -> None:
            for i in range(200):
                if stop.is_set() and i > 0:
                    return
                batch = [(Item.create(f"w{t}-{i}-{j}", title=f"batch {t} {i}"), VECTOR) for j in range(5)]
                try:
                    store.put(batch)
                    acknowledged.append(f"w{t}-{i}")
                except StorageError as exc:
                    failures.append(exc)

        writers = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for writer in writers:
            writer.start()
        wait_for(lambda: len(acknowledged) >= 12, 20.0)
        server.kill()
        time.sleep(0.5)
        server.restart()
        done = len(acknowledged)
        wait_for(lambda: len(acknowledged) >= done + 8, 30.0)  # writing again after the restart
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
        assert not any(writer.is_alive() for writer in writers)
        assert all("nothing was acknowledged" in str(exc) for exc in failures), failures
        assert failures == []  # within 8 retries the pool reconnected
        assert any("connection lost" in r.getMessage() for r in caplog.records)  # the kill did cut writes short
        for name in acknowledged:
            for j in range(5):
                assert store.get(f"{name}-{j}") is not None, name
        assert store.integrity() == []
        store.close()
