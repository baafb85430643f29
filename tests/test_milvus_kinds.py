"""What a write costs on Milvus, and the vector kinds of a shared collection, against the real Milvus and
PostgreSQL servers: a write applied with the LTR extension asks the Milvus server nothing but its upsert (a
spy on the real client counts the calls), on the writer and on a server that hears of it; a kind leaves the
shared record, and every process's list, when its last vector goes."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Item

pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus: pip install 'xmodal[milvus]'")
pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")

from xmodal.backends.base import BackendContext  # noqa: E402
from xmodal.backends.milvus import KINDS_REFRESH_S, MilvusBackend  # noqa: E402
from xmodal.store.postgres import PostgresStore  # noqa: E402
from xmodal.store.shared_settings import PostgresShared  # noqa: E402
from xmodal.store.sqlite import StoredItem  # noqa: E402


class Spy:
    """The real ``MilvusClient``, counting the calls made through it by name."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls: collections.Counter[str] = collections.Counter()
        self.queries: list[dict[str, Any]] = []  # the keyword arguments of each query

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "query":
                self.queries.append(kwargs)
            return attr(*args, **kwargs)

        return counted


def spy_on(engine: Engine) -> Spy:
    spy = Spy(engine.backend.client)  # type: ignore[attr-defined]
    engine.backend.client = spy  # type: ignore[attr-defined]
    return spy


def wait_for(done: Callable[[], bool], timeout: float) -> None:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"not done within {timeout} s")
        time.sleep(0.01)


def test_a_write_with_the_ltr_extension_asks_milvus_nothing_but_its_upsert(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, tmp_path: Path
) -> None:
    where = f"{postgres_server.url}?schema={postgres_schema}&vectors=milvus://127.0.0.1:{milvus_server.port}"
    writer = Engine.open(f"{where}&state={tmp_path / 'a'}", encoder="hashing", dim=16, index="flat", extensions=["ltr"])
    reader = Engine.open(f"{where}&state={tmp_path / 'b'}")
    try:
        writer.add([Item.create("first", title="the first item")])  # the text kind's first vectors
        pipe = writer.extension("ltr").pipeline  # type: ignore[attr-defined]
        assert "dense:text" in pipe.specs  # its dense strategy joined
        # the reader hears of a write at its commit in PostgreSQL, before the writer's Milvus upsert: the second
        # write finds the first's vectors there (the writer applies its writes in turn), and its strategy joins
        writer.add([Item.create("second", title="the second item")])
        theirs = reader.extension("ltr").pipeline  # type: ignore[attr-defined]
        wait_for(lambda: "dense:text" in theirs.specs, 10.0)
        spied, heard = spy_on(writer), spy_on(reader)
        start = time.perf_counter()
        for i in range(10):
            writer.add([Item.create(f"i{i}", title=f"item number {i}")])
        took = time.perf_counter() - start
        wait_for(lambda: reader.applied_seq() == writer.applied_seq(), 10.0)
        # before: `vector_kinds()` and `vector_count(kind)` at every write applied, each a Milvus query (a count,
        # and the kinds' discovery at the read's consistency): none now
        assert spied.calls["upsert"] + spied.calls["insert"] == 10, spied.calls
        assert not [q for q in spied.queries if "count(*)" in q.get("output_fields", [])], spied.queries
        own = [q for q in spied.queries if q.get("consistency_level") == "Bounded" and q.get("limit") == 1]
        assert own == spied.queries, spied.queries  # left: the upsert's own look for kinds to drop, …
        assert len(own) <= 2 * (int(took / KINDS_REFRESH_S) + 1)  # … once a second at most (1 kind: 2 queries)
        assert sum(heard.calls.values()) == 0, heard.calls  # the reader only reads the store's log
        assert reader.backend.count("text") == len(reader) == 12  # and the writes are there, for every process
    finally:
        writer.close()
        reader.close()


def stored(row: int, kinds: dict[str, float]) -> StoredItem:
    return StoredItem(
        row, Item.create(f"r{row}", title=f"row {row}"), {k: np.full(8, v, np.float32) for k, v in kinds.items()}
    )


def test_a_kind_leaves_the_shared_record_when_its_last_vector_goes(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, tmp_path: Path
) -> None:
    store = PostgresStore(postgres_server.url, postgres_schema)
    options = {"uri": milvus_server.uri}
    first = MilvusBackend.open(BackendContext(tmp_path / "a", 8, "flat", options, shared=PostgresShared(store)))
    second = MilvusBackend.open(BackendContext(tmp_path / "b", 8, "flat", options, shared=PostgresShared(store)))
    key = f"milvus-ts:{first.collection}"
    try:
        first.upsert([stored(1, {"text": 0.1, "sketch": 0.2}), stored(2, {"text": 0.3, "sketch": 0.4})])
        assert store.get_meta(key)["kinds"] == ["sketch", "text"]
        assert second.kinds() == ["text", "sketch"] and second.count("sketch") == 2
        first.remove([1])
        assert store.get_meta(key)["kinds"] == ["sketch", "text"]  # row 2 still holds a sketch
        first.upsert([stored(2, {"text": 0.5})])  # row 2 without its sketch: the kind's last vector goes
        assert store.get_meta(key)["kinds"] == ["text"]
        assert first.kinds() == ["text"] and first.count("sketch") == 0
        wait_for(lambda: second.kinds() == ["text"], 3.0)  # the other process's list follows within a second
        assert second.count("sketch") == 0 and second.count("text") == 1
        first.upsert([stored(3, {"sketch": 0.6})])  # a kind that comes back is listed again at once
        assert store.get_meta(key)["kinds"] == ["sketch", "text"] and second.kinds() == ["text", "sketch"]
        second.remove([2, 3])  # removed by the other process: every kind goes
        assert store.get_meta(key)["kinds"] == []
        wait_for(lambda: first.kinds() == [], 3.0)
    finally:
        first.close()
        second.close()
        store.close()
