"""The Milvus collections of a ``postgres://`` index's older vector epochs are dropped, against real servers: each
epoch (``xmodal reindex --switch``, a restore) gets its own collection; a server that opens or follows the
current epoch drops those older than the previous one (kept for servers still following), ``xmodal reindex
--drop-previous`` drops the previous one too, and a server still on a dropped epoch fails naming the fix.
Another schema's collections and collections this backend did not tag with the store are never touched."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_reindex import NEW, OLD, items
from xmodal import Engine, StorageError, ValidationError
from xmodal.cli import main
from xmodal.migration import Reindex

pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus: pip install 'xmodal[milvus]'")
pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")


def location(pg: Any, schema: str, state: Path, milvus: Any) -> str:
    return f"{pg.url}?schema={schema}&state={state}&vectors=milvus://127.0.0.1:{milvus.port}"


@pytest.fixture
def client(milvus_server: Any) -> Iterator[Any]:
    from pymilvus import MilvusClient

    found = MilvusClient(uri=milvus_server.uri, timeout=30)
    try:
        yield found
    finally:
        found.close()


def collections_of(client: Any, schema: str) -> set[str]:
    """The collections named as the default ones of ``schema``'s epochs (``xmodal_<schema>_<16 hex digits>``)."""
    shape = re.compile(f"xmodal_{schema}_[0-9a-f]{{16}}")
    return {str(name) for name in client.list_collections() if shape.fullmatch(str(name))}


def recorded(engine: Engine) -> set[str]:
    """The collections whose progress (marker or write timestamp) the store's meta holds."""
    from xmodal.backends.milvus import progress_keys

    keys = {str(key) for (key,) in engine.store.read("SELECT key FROM meta WHERE key LIKE %s", ("milvus%",))}
    return {key.partition(":")[2] for key in keys if key in progress_keys(key.partition(":")[2])}


def switch(url: str, options: dict[str, Any]) -> None:
    with Reindex(url) as job:
        job.start("hashing", options)
        job.run(batch=50)
        job.switch()


def test_only_the_current_and_previous_epochs_collections_remain(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, client: Any, tmp_path: Path
) -> None:
    from xmodal.backends.milvus import DESCRIPTION

    other_schema = f"{postgres_schema}_x"
    other = Engine.open(
        location(postgres_server, other_schema, tmp_path / "o", milvus_server), encoder="hashing", dim=16, index="flat"
    )
    other.add(items(5))
    url = location(postgres_server, postgres_schema, tmp_path / "a", milvus_server)
    a = Engine.open(url, encoder="hashing", encoder_options=OLD, index="flat")
    behind = Engine.open(location(postgres_server, postgres_schema, tmp_path / "b", milvus_server))
    lookalike = f"xmodal_{postgres_schema}_{'0' * 16}"  # our names' shape, not made for this store (no tag)
    try:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False, description=DESCRIPTION)
        from pymilvus import DataType

        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=8)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
        client.create_collection(lookalike, schema=schema)
        a.add(items(60))
        first = a.backend.collection  # type: ignore[attr-defined]
        foreign = {other.backend.collection, lookalike}  # type: ignore[attr-defined]
        assert collections_of(client, other_schema) == {other.backend.collection}  # type: ignore[attr-defined]
        behind._follow_if_switched = lambda: False  # type: ignore[method-assign]  # never hears of a switch

        switch(url, NEW)
        a.follow_switch()
        second = a.backend.collection  # type: ignore[attr-defined]
        assert second != first and a.dim == 64
        assert collections_of(client, postgres_schema) == {first, second, lookalike}  # the previous one kept
        assert behind.search("green tree", k=3, mode="dense").items  # a server still on it serves

        switch(url, OLD)
        a.follow_switch()
        third = a.backend.collection  # type: ignore[attr-defined]
        assert third not in (first, second) and a.dim == 32
        assert collections_of(client, postgres_schema) == {second, third, lookalike}  # the first one dropped
        assert first not in recorded(a) and {second, third} <= recorded(a)  # its progress records with it
        assert collections_of(client, other_schema) == {other.backend.collection}  # type: ignore[attr-defined]
        with pytest.raises(StorageError, match="gone.*restart this server"):  # two switches behind: the fix named
            behind.search("green tree", k=3, mode="dense")
        with contextlib.suppress(StorageError, ValidationError):  # its checkpoint meets the new epoch's vectors
            behind.close()

        # a server opening now changes nothing; --drop-previous drops the previous epoch's collection
        with Engine.open(location(postgres_server, postgres_schema, tmp_path / "c", milvus_server)) as c:
            assert c.backend.collection == third  # type: ignore[attr-defined]
        assert collections_of(client, postgres_schema) == {second, third, lookalike}
        assert main(["--index", url, "reindex", "--drop-previous"]) == 0
        assert collections_of(client, postgres_schema) == {third, lookalike}
        assert third in recorded(a) and second not in recorded(a)
        assert main(["--index", url, "reindex", "--drop-previous"]) == 0  # nothing left to drop
        assert collections_of(client, postgres_schema) | collections_of(client, other_schema) == {third, *foreign}
        a.refresh()
        assert a.search("green tree", k=3, mode="dense").items[0].title.startswith("green tree")
        assert other.search("green tree", k=3, mode="dense").items
    finally:
        with contextlib.suppress(StorageError, ValidationError):
            behind.close()
        a.close()
        other.close()
        client.drop_collection(lookalike)


def test_restores_over_the_schema_keep_the_current_and_previous_collections(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, client: Any, tmp_path: Path
) -> None:
    def url_of(state: str) -> str:
        return f"{location(postgres_server, postgres_schema, tmp_path / state, milvus_server)}&media={tmp_path / 'm'}"

    url = url_of("a")
    with Engine.open(url, encoder="hashing", dim=32, index="flat") as engine:
        engine.add(items(20))
        made = [engine.backend.collection]  # type: ignore[attr-defined]
    assert main(["--index", url, "backup", str(tmp_path / "backup")]) == 0
    for n in range(2):  # each restore gives the index a new vector epoch: its servers make a new collection
        assert main(["--index", url, "restore", str(tmp_path / "backup"), "--replace"]) == 0
        with Engine.open(url_of(f"r{n}")) as engine:  # a fresh state folder, as after a restore
            assert len(engine) == 20 and engine.search("black cat", k=1, mode="dense").items
            made.append(engine.backend.collection)  # type: ignore[attr-defined]
        assert collections_of(client, postgres_schema) == set(made[-2:])
    assert len(set(made)) == 3


def test_a_given_collection_is_refused_after_a_switch_never_mixed(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, client: Any, tmp_path: Path
) -> None:
    from xmodal import ConfigError

    given = f"given_{postgres_schema}"
    url = location(postgres_server, postgres_schema, tmp_path / "a", milvus_server)
    a = Engine.open(url, encoder="hashing", encoder_options=OLD, index="flat", index_options={"collection": given})
    try:
        a.add(items(30))
        assert a.search("green tree", k=3, mode="dense").items
        switch(url, {**OLD, "seed": 3})  # the same dimension: only the epoch tells the vectors apart
        assert not a.follow_switch()  # the given collection holds the old epoch's vectors: not reused
        with pytest.raises(ConfigError, match="given by collection=.*another vector epoch.*new collection= name"):
            a.search("green tree", k=3, mode="dense")
        with pytest.raises(ConfigError, match="given by collection=.*another vector epoch"):
            Engine.open(location(postgres_server, postgres_schema, tmp_path / "b", milvus_server))
        assert client.has_collection(given)  # a given collection is never dropped
    finally:
        with contextlib.suppress(ConfigError, StorageError, ValidationError):
            a.close()
        client.drop_collection(given)
