"""The ``milvus`` backend on a shared (PostgreSQL) store: every process uses one collection named from the
store, each change is applied to it by the process that committed it (the others only read it), opening
never drops it, its progress is recorded in the store, and a Milvus stop/start while a writer writes loses no
acknowledged write (the writer catches up from the store's change log once Milvus answers again)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MILVUS_SETTINGS
from xmodal import Engine, Item

pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus: pip install 'xmodal[milvus]'")
pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")
pytest.importorskip("milvus", reason="the Milvus test server needs the milvus package: pip install 'xmodal[milvus]'")


@pytest.fixture(scope="module")
def restartable_milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Milvus server of this module's own (the tests restart it), on ports a restart keeps."""
    from xmodal.backends.milvus_server import LocalMilvus

    server = LocalMilvus(tmp_path_factory.mktemp("milvus-shared"), settings=MILVUS_SETTINGS).start()
    try:
        yield server
    finally:
        server.stop()


def location(pg: Any, schema: str, state: Path, milvus: Any) -> str:
    return f"{pg.url}?schema={schema}&state={state}&vectors=milvus://127.0.0.1:{milvus.port}"


def wait_until_serving(server: Any, collection: str, timeout: float = 180.0) -> None:
    """Until a restarted server answers queries on ``collection`` (it reloads it first)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=server.uri, timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.query(collection, filter="row >= 0", limit=1, timeout=5)
                return
            except Exception:  # noqa: BLE001 - not serving yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        client.close()


def items(start: int, n: int) -> list[Item]:
    return [
        Item.create(f"i{i}", title=f"item {i} word{i % 7}", text=f"thing {i}", attributes={"n": i})
        for i in range(start, start + n)
    ]


def test_processes_share_one_collection_and_apply_only_their_own_writes(
    postgres_server: Any, postgres_schema: str, restartable_milvus: Any, tmp_path: Path
) -> None:
    a = Engine.open(
        location(postgres_server, postgres_schema, tmp_path / "a", restartable_milvus),
        encoder="hashing",
        dim=32,
        index="flat",
    )
    b = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b", restartable_milvus))
    try:
        col = a.backend.collection  # type: ignore[attr-defined]
        assert col == b.backend.collection  # type: ignore[attr-defined]
        assert col.startswith(f"xmodal_{postgres_schema}_")  # from the store, not the state folder
        applied: list[int] = []
        original = b.backend.on_put

        def counting(stored: Any) -> None:
            applied.append(len(stored))
            original(stored)

        b.backend.on_put = counting  # type: ignore[method-assign]
        a.add(items(0, 30))
        assert b.backend.count("text") == 30
        c = Engine.open(location(postgres_server, postgres_schema, tmp_path / "c", restartable_milvus))
        try:  # a third process opened without a local checkpoint: nothing dropped, nothing lost
            assert c.backend.count("text") == 30
            a.add(items(30, 10))
            a.delete(["i3"])
            found = c.search("item 35 word0", k=5, mode="dense", filters={"n": 35})  # answered by Milvus
            assert [str(i) for i in found.hits.ids] == ["i35"]
            assert c.backend.count("text") == 39
            assert not c.search("item 3 word3", k=5, mode="dense", filters={"n": 3}).hits.ids.size
        finally:
            c.close()
        b.refresh()
        assert b.get("i39") is not None and applied == []  # b heard every write and applied none to Milvus
        b.add(items(40, 5))
        assert applied == [5] and a.backend.count("text") == 44
        a.checkpoint()  # the catch-up records the store's last change as the collection's
        assert a.backend.saved_seq == a.store.last_seq()
    finally:
        b.close()
        a.close()


def test_a_milvus_restart_during_writes_loses_no_acknowledged_write(
    postgres_server: Any, postgres_schema: str, restartable_milvus: Any, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="xmodal.engine")
    writer = Engine.open(
        location(postgres_server, postgres_schema, tmp_path / "w", restartable_milvus),
        encoder="hashing",
        index_options={"retries": 3, "timeout": 5},  # a new collection can take 2 s to load here
        dim=32,
        index="flat",
    )
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def write() -> None:
        start = 0
        while not stop.is_set():
            batch = items(start, 5)
            try:
                writer.add(batch)
                acknowledged.extend(item.id for item in batch)
            except Exception as exc:  # noqa: BLE001 - counted: an error is not an acknowledgement
                errors.append(repr(exc))
            start += 5
            time.sleep(0.05)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(acknowledged) < 20:
            time.sleep(0.05)
        at_stop = len(acknowledged)
        restartable_milvus.restart(down_s=2.0)
        time.sleep(1.0)  # writes after Milvus is back
        stop.set()
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert len(acknowledged) > at_stop  # writes went on while Milvus was down or restarting
        # some were acknowledged while Milvus could not take them (in PostgreSQL only, until the catch-up)
        assert any("shared vectors lack changes" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        thread.join(timeout=120)
    wait_until_serving(restartable_milvus, writer.backend.collection)  # type: ignore[attr-defined]
    reader = Engine.open(location(postgres_server, postgres_schema, tmp_path / "r", restartable_milvus))
    try:
        writer.refresh()  # the writer catches up what Milvus missed (its next read or write would too)
        rows = {int(r) for r in reader.backend.rows("text")}  # type: ignore[attr-defined]
        wanted = {reader.store.get(item_id).row for item_id in acknowledged}  # type: ignore[union-attr]
        assert wanted <= rows, f"{len(wanted - rows)} acknowledged items missing from Milvus; errors: {errors[:3]}"
        last = int(acknowledged[-1][1:])
        hits = reader.search(f"item {last}", k=5, mode="dense", filters={"n": last}).hits.ids
        assert [str(i) for i in hits] == [f"i{last}"]
    finally:
        reader.close()
        writer.close()


READER = r"""
import json, sys
from xmodal import Engine

engine = Engine.open(sys.argv[1])
backend = engine.backend
used = []
original = backend.client.search


def recording(*args, **kwargs):
    used.append({"level": str(kwargs.get("consistency_level")), "ts": int(kwargs.get("guarantee_timestamp") or 0)})
    return original(*args, **kwargs)


backend.client.search = recording
engine.search("item", k=1, mode="dense")  # the first read of a process is Strong (deletes before it: no timestamp)
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    used.clear()
    hits = engine.search(f"item {n}", k=5, mode="dense", filters={"n": n}).hits.ids  # one search, no retry
    print(json.dumps({"ids": [str(i) for i in hits], "used": used}), flush=True)
engine.close()
"""


def test_a_reader_process_sees_each_acknowledged_write_at_once_through_the_recorded_timestamp(
    postgres_server: Any, postgres_schema: str, restartable_milvus: Any, tmp_path: Path
) -> None:
    """Another process searching right after a write is acknowledged finds it, with one search: its read waits
    for the writer's Milvus timestamp recorded in the store (not ``Strong``, not its own ``Session``, which
    knows nothing of the writer's write: the server's time tick is 50 ms, so a read that did not wait for the
    write would miss it)."""
    import json
    import subprocess
    import sys

    writer = Engine.open(
        location(postgres_server, postgres_schema, tmp_path / "w", restartable_milvus),
        encoder="hashing",
        dim=32,
        index="flat",
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, location(postgres_server, postgres_schema, tmp_path / "r", restartable_milvus)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdin is not None and reader.stdout is not None
        writer.add(items(0, 20))
        assert reader.stdout.readline().strip() == "ready"
        for n in range(20, 30):
            writer.add(items(n, 1))  # acknowledged
            written = writer.backend._write_ts()  # type: ignore[attr-defined]
            reader.stdin.write(f"{n}\n")
            reader.stdin.flush()
            answer = json.loads(reader.stdout.readline())
            assert answer["ids"] == [f"i{n}"], answer
            assert answer["used"] and all(u["level"] == "Customized" for u in answer["used"]), answer
            assert all(u["ts"] >= written > 0 for u in answer["used"]), (answer, written)
    finally:
        if reader.stdin is not None:
            reader.stdin.close()
        reader.wait(timeout=60)
        writer.close()
