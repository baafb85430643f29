"""The ``milvus`` backend beyond the conformance suite, on the session's real Milvus 2.3.5 server
(``milvus_server`` in conftest.py): an engine and the CLI on it end to end, the index types and their
verification, and the errors for a server that is not there, a foreign collection and ignored parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import text_items
from xmodal import Engine
from xmodal.backends import BackendContext, open_backend
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError, StorageError
from xmodal.filters import FilterExpr

pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus: pip install 'xmodal[milvus]'")


def test_an_engine_on_milvus_searches_filters_and_reopens(milvus_server: Any, tmp_path: Path) -> None:
    options = {"uri": milvus_server.uri}
    path = tmp_path / "idx"
    engine = Engine.open(path, encoder=HashingEncoder(), index="hnsw", backend="milvus", index_options=options)
    try:
        engine.add(text_items(60))
        engine.delete(["t0", "t4"])
        result = engine.search("word3 thing", k=10, mode="dense", filters={"color": "red", "price": {"lt": 40}})
        ids = [str(i) for i in result.hits.ids]
        # red is every 4th item: t0..t36 are red below 40, t0 and t4 deleted -> 8 match
        assert len(ids) == 8 and set(ids) == {f"t{i}" for i in range(8, 40, 4)}
        # text_contains: Milvus 2.3 matches prefixes only, so the attribute table resolves it to rows
        worded = engine.search("thing", k=5, mode="dense", filters={"color": {"text_contains": "ree"}})
        assert len(worded.hits) == 5 and all(int(str(i)[1:]) % 4 == 1 for i in worded.hits.ids)  # green
    finally:
        engine.close()
    reopened = Engine.open(path)
    try:
        assert reopened.backend.saved_seq > 0 and reopened.backend.count("text") == 58
        again = reopened.search("word3 thing", k=10, mode="dense", filters={"color": "red", "price": {"lt": 40}})
        assert [str(i) for i in again.hits.ids] == ids
    finally:
        reopened.close()


def test_the_cli_creates_an_index_on_milvus(
    milvus_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        "".join(
            json.dumps({"id": it.id, "title": it.title, "attributes": it.attributes}) + "\n" for it in text_items(20)
        )
    )
    index = str(tmp_path / "idx")
    base = ["--index", index, "--encoder", "hashing", "--backend", "milvus", "--option", f"uri={milvus_server.uri}"]
    assert main([*base, "--option", "ef=80", "add", "-q", str(catalog)]) == 0
    capsys.readouterr()
    assert main(["--index", index, "search", "item 7", "--mode", "dense", "--where", "color=black", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hits"] and {hit["id"] for hit in out["hits"]} <= {f"t{i}" for i in range(3, 20, 4)}
    engine = Engine.open(index)
    try:
        assert type(engine.backend).__name__ == "MilvusBackend" and engine.backend.search_params["ef"] == 80  # type: ignore[attr-defined]
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("kind", "options", "index_type"), [("ivf_flat", {"nlist": 16, "nprobe": 16}, "IVF_FLAT"), ("flat", {}, "FLAT")]
)
def test_index_types_are_made_and_verified(
    milvus_server: Any, tmp_path: Path, kind: str, options: dict[str, Any], index_type: str
) -> None:
    backend = open_backend("milvus", BackendContext(tmp_path, 8, kind, {"uri": milvus_server.uri, **options}))
    try:
        info = backend.client.describe_index(backend.collection, "vector")  # type: ignore[attr-defined]
        assert info["index_type"] == index_type and info["metric_type"] == "IP"
        vectors = np.eye(8, dtype=np.float32)
        from tests.test_backend_conformance import stored

        backend.upsert([stored(i, {"text": vectors[i]}) for i in range(8)])
        hits = backend.search(vectors[:3], 1, ["text"], FilterExpr.parse({"color": ["red", "green", "blue"]}))
        assert [h.rows.tolist() for h in hits] == [[7], [10], [13]]  # rows 7 + 3i, colors of items 0..2
    finally:
        backend.client.drop_collection(backend.collection)  # type: ignore[attr-defined]
        backend.close()


def test_parameters_the_server_would_ignore_are_refused(milvus_server: Any, tmp_path: Path) -> None:
    uri = milvus_server.uri
    with pytest.raises(ConfigError, match="bogus would be ignored"):
        open_backend("milvus", BackendContext(tmp_path, 8, "hnsw", {"uri": uri, "params": {"M": 8, "bogus": 1}}))
    with pytest.raises(ConfigError, match="M would be ignored"):
        open_backend("milvus", BackendContext(tmp_path, 8, "diskann", {"uri": uri, "m": 8}))
    with pytest.raises(ConfigError, match="refused a HNSW index.*M out of range"):
        open_backend("milvus", BackendContext(tmp_path, 8, "hnsw", {"uri": uri, "m": 5000}))
    with pytest.raises(ConfigError, match="unknown milvus backend option.*nosuch"):
        open_backend("milvus", BackendContext(tmp_path, 8, "hnsw", {"uri": uri, "nosuch": 1}))


def test_a_collection_of_another_schema_is_refused(milvus_server: Any, tmp_path: Path) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_server.uri)
    client.create_collection("someone_elses", dimension=8)
    try:
        with pytest.raises(ConfigError, match="someone_elses.*another schema.*collection= name"):
            open_backend(
                "milvus", BackendContext(tmp_path, 8, "hnsw", {"uri": milvus_server.uri, "collection": "someone_elses"})
            )
        assert client.has_collection("someone_elses")  # never dropped
    finally:
        client.drop_collection("someone_elses")
        client.close()


def test_a_server_older_than_2_3_is_refused_before_anything_is_made(
    milvus_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymilvus import MilvusClient

    from xmodal.backends.milvus import server_version

    client = MilvusClient(uri=milvus_server.uri)
    try:
        assert server_version(str(client.get_server_version())) >= (2, 3)  # the real server: accepted
        assert server_version("v2.2.16") < (2, 3) <= server_version("v2.3.0-beta") < server_version("2.4.1")
        monkeypatch.setattr(MilvusClient, "get_server_version", lambda self, **kwargs: "v2.2.16")
        with pytest.raises(ConfigError, match="version v2.2.16.*needs 2.3 or later.*upgrade the server"):
            open_backend(
                "milvus", BackendContext(tmp_path, 8, "hnsw", {"uri": milvus_server.uri, "collection": "too_old"})
            )
        assert not client.has_collection("too_old")
    finally:
        client.close()


def test_a_server_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = BackendContext(tmp_path, 8, "hnsw", {"uri": f"http://127.0.0.1:{port}", "retries": 2, "timeout": 1})
    with pytest.raises(
        StorageError, match=rf"Milvus server at http://127.0.0.1:{port} is unavailable.*failed 2 times.*uri="
    ):
        open_backend("milvus", context)


def _stored(rows: range, dim: int = 16) -> list[Any]:
    from xmodal.records import Item
    from xmodal.store.sqlite import StoredItem

    vectors = np.random.default_rng(3).standard_normal((max(rows) + 1, dim)).astype(np.float32)
    return [
        StoredItem(r, Item.create(f"i{r}", title=f"item {r}", attributes={"n": r}), {"text": vectors[r]}) for r in rows
    ]


def _count_inserts(backend: Any) -> list[int]:
    """The rows ``backend`` inserts from now on (its client's ``insert`` calls, which still run), in order."""
    inserted: list[int] = []
    original = backend.client.insert

    def counting(collection: str, data: list[dict[str, Any]], **kwargs: Any) -> Any:
        inserted.extend(int(d["row"]) for d in data)
        return original(collection, data, **kwargs)

    backend.client.insert = counting
    return inserted


def _pk_count(backend: Any, pk: str) -> int:
    hits = backend.client.query(
        backend.collection, filter=f'pk == "{pk}"', output_fields=["count(*)"], consistency_level="Strong"
    )
    return int(hits[0]["count(*)"])


def test_new_rows_are_inserted_and_a_replay_after_a_crash_leaves_one_row_per_key(
    milvus_server: Any, tmp_path: Path
) -> None:
    """Rows new to the collection are inserted (Milvus 2.3 keeps two rows for one key inserted twice, shown
    last), updates upserted; a process that inserted rows after its checkpoint and died leaves them above the
    checkpoint's high-water mark, and the reopened backend finds them, so replaying their changes upserts."""
    options = {"uri": milvus_server.uri, "collection": "xmodal_insert_replay"}
    context = BackendContext(tmp_path / "idx", 16, "flat", options)
    backend = open_backend("milvus", context)
    try:
        inserted = _count_inserts(backend)
        backend.upsert(_stored(range(10)))
        assert inserted == list(range(10))  # new rows: inserted
        backend.upsert(_stored(range(5)))  # an update: upserted
        assert inserted == list(range(10)) and backend.count("text") == 10
        assert backend.checkpoint(10) is True
        backend.upsert(_stored(range(10, 20)))  # inserted after the checkpoint, then the process dies
        assert inserted == list(range(20))
        backend.close()  # no checkpoint: the state says change 10, rows up to 9

        reopened = open_backend("milvus", context)
        try:
            assert reopened.saved_seq == 10
            again = _count_inserts(reopened)
            reopened.upsert(_stored(range(10, 20)))  # the engine replays the changes after 10: upserted
            reopened.upsert(_stored(range(20, 25)))  # then new rows are inserted again
            assert again == list(range(20, 25))
            assert reopened.count("text") == 25
            assert all(_pk_count(reopened, f"{r}/text") == 1 for r in range(25))
            raw = {"pk": "999/text", "row": 999, "kind": "text", "attrs": {}, "vector": np.ones(16, np.float32)}
            reopened.client.insert(reopened.collection, [raw])  # the hazard: an insert does not replace a row
            reopened.client.insert(reopened.collection, [raw])
            assert _pk_count(reopened, "999/text") == 2
        finally:
            reopened.client.drop_collection(reopened.collection)
            reopened.close()
    finally:
        backend.close()
