"""``xmodal backup`` / ``restore`` of a ``postgres://`` index against the real PostgreSQL server: a round trip
into another database while a writer keeps writing (items, vectors, media, feedback, the search answers), a
restore that refuses to overwrite without ``--replace``, a damaged backup that restores nothing."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from xmodal import Engine, Item, Query, StorageError, ValidationError
from xmodal.cli import main
from xmodal.location import parse_postgres

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")

from xmodal.store.postgres_backup import restore_pg, write_pg_backup  # noqa: E402


def new_database(server: Any) -> str:
    """A new database on the test server; the server's URL for it."""
    import psycopg

    name = f"restored_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def test_a_backup_taken_during_writes_restores_into_another_database(
    postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{postgres_server.url}?schema={postgres_schema}&media={tmp_path / 'media'}&state={tmp_path / 'a'}"
    engine = Engine.open(url, encoder="hashing", dim=64, index="exact")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "red.png")
    engine.add([Item.create(f"t{i}", title=f"item {i} word{i % 5}") for i in range(30)])
    engine.add([Item.create("pic", title="red square", image="red.png")], base_dir=tmp_path)
    result = engine.search("item word3", mode="dense", k=5, log=True)
    assert result.query_id is not None
    engine.feedback(result.query_id, result.hits.ids[0], "click")
    before = engine.search(Query(text="item 7 word2", k=5, mode="dense")).hits.ids.tolist()
    done, written = threading.Event(), []

    def write() -> None:  # a server that keeps writing while the backup runs
        i = 0
        while not done.is_set():
            engine.add([Item.create(f"w{i}", title=f"written during the backup {i}")])
            written.append(f"w{i}")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        acknowledged = len(written)
        dest = tmp_path / "backup"
        assert main(["--index", url, "backup", str(dest), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
    finally:
        done.set()
        writer.join()
    manifest = json.loads((dest / "manifest.json").read_text())
    assert summary["items"] == manifest["items"] >= 31 + acknowledged  # every write acknowledged before it began
    assert {f["path"] for f in manifest["files"]} >= {"store.pgdump", str(engine.get("pic").media["image"])}

    target = f"{new_database(postgres_server)}?schema={postgres_schema}&media={tmp_path / 'media2'}"
    assert main(["--index", target, "restore", str(dest)]) == 0
    restored = Engine.open(f"{target}&state={tmp_path / 'b'}")
    try:
        assert len(restored) == manifest["items"] and restored.last_seq() == manifest["store_seq"]
        assert (
            restored.get("pic") is not None and restored.media.path(str(restored.get("pic").media["image"])).is_file()
        )
        assert restored.search(Query(text="item 7 word2", k=5, mode="dense")).hits.ids.tolist() == before
        assert restored.feedback_log.impression(result.query_id) is not None  # the feedback log came along
        assert str(restored.epoch).startswith("restored-")  # every server rebuilds its vectors
        restored.add([Item.create("later", title="added after the restore")])
    finally:
        restored.close()
        engine.close()

    where = parse_postgres(target)
    with pytest.raises(ValidationError, match="already holds an index.*--replace"):
        restore_pg(dest, where)
    report = restore_pg(dest, where, replace=True)
    assert report["replaced"] and report["items"] == manifest["items"]
    again = Engine.open(f"{target}&state={tmp_path / 'c'}")
    try:
        assert again.store.get("later") is None and len(again) == manifest["items"]  # replaced whole
    finally:
        again.close()


def test_a_damaged_backup_or_another_schema_restores_nothing(
    postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    url = f"{postgres_server.url}?schema={postgres_schema}&state={tmp_path / 'a'}"
    with Engine.open(url, encoder="hashing", dim=16) as engine:
        engine.add([Item.create(f"t{i}", title=f"item {i}") for i in range(5)])
    dest = tmp_path / "backup"
    write_pg_backup(parse_postgres(url), dest)
    with pytest.raises(ValidationError, match="already exists"):
        write_pg_backup(parse_postgres(url), dest)
    target = new_database(postgres_server)
    with pytest.raises(ValidationError, match=rf"holds schema '{postgres_schema}'.*\?schema={postgres_schema}"):
        restore_pg(dest, parse_postgres(f"{target}?schema=other"))
    dump = dest / "store.pgdump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="damaged.*store.pgdump"):
        restore_pg(dest, parse_postgres(f"{target}?schema={postgres_schema}"))
    import psycopg

    with psycopg.connect(target) as db:
        found = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (postgres_schema,)).fetchone()
    assert found is None  # nothing was restored
    assert main(["--index", str(tmp_path / "folder"), "restore", str(dest)]) == 2  # a folder index: refused
