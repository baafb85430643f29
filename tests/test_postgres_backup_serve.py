"""Backups of a ``postgres://`` index beyond the CLI, against the real servers on 127.0.0.1: ``POST /backup`` of
a server over PostgreSQL + Milvus while REST writes go on (every write acknowledged before the call is in the
backup, every one acknowledged at all is in the index), and media in an S3-compatible bucket (moto's S3 server)
copied into the backup, checked against their hashes, and uploaded into the bucket of the restored index."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmodal import Engine, Item, NotFoundError, Query
from xmodal.cli import main
from xmodal.location import parse_postgres

pytest.importorskip("psycopg", reason="the postgres store needs psycopg: pip install 'xmodal[postgres]'")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402
from xmodal.store.postgres_backup import restore_pg  # noqa: E402

ADMIN, WRITER = "admin-key-0001", "write-key-0001"
KEYS = (ApiKey(ADMIN, frozenset({"admin"}), "admin"), ApiKey(WRITER, frozenset({"write", "read"}), "writer"))
A, W = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {WRITER}"}
BUCKET = "shop-media"


def new_database(server: Any) -> str:
    """A new database on the test server; the server's URL for it."""
    import psycopg

    name = f"restored_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


class RestWriter:
    """A thread adding one item at a time over REST until stopped; the ids each answer acknowledged, in order."""

    def __init__(self, url: str) -> None:
        self.url, self.acknowledged, self.failures = url, list[str](), list[str]()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> RestWriter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            i = 0
            while not self._done.is_set():
                item = {"id": f"w{i}", "title": f"written during the backup n{i}"}
                answer = client.post(f"{self.url}/items", json={"items": [item]}, headers=W)
                if answer.status_code == 200:
                    self.acknowledged.append(item["id"])
                else:
                    self.failures.append(answer.text)
                i += 1


def test_post_backup_of_a_postgres_milvus_index_while_rest_writes_go_on(
    postgres_server: Any, postgres_schema: str, milvus_server: Any, tmp_path: Path
) -> None:
    vectors = f"vectors=milvus://127.0.0.1:{milvus_server.port}"
    url = f"{postgres_server.url}?schema={postgres_schema}&{vectors}&media={tmp_path / 'media'}&state={tmp_path / 'a'}"
    engine = Engine.open(url, encoder="hashing", dim=64, index="flat")
    backups = tmp_path / "backups"
    (tmp_path / "red.png").write_bytes(png((200, 10, 10)))
    engine.add([Item.create(f"t{i}", title=f"item {i} word{i % 5}") for i in range(40)])
    engine.add([Item.create("pic", title="red square", image="red.png")], base_dir=tmp_path)
    before = engine.search(Query(text="item 7 word2", k=5, mode="dense")).hits.ids.tolist()
    try:
        with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS, backup_dir=str(backups)))) as served:
            with RestWriter(served) as writer:
                while len(writer.acknowledged) < 5:  # writes are flowing
                    threading.Event().wait(0.05)
                acknowledged = list(writer.acknowledged)
                done = httpx.post(f"{served}/backup", json={"name": "pg-1"}, headers=A, timeout=300)
                while len(writer.acknowledged) < len(acknowledged) + 10:  # and go on after it
                    threading.Event().wait(0.05)
            assert done.status_code == 200, done.text
            body = done.json()
            assert body["path"] == str(backups / "pg-1") and body["missing_media"] == []
            again = httpx.post(f"{served}/backup", json={"name": "pg-1"}, headers=A)
            assert again.status_code == 422 and again.json()["field"] == "destination"
        assert writer.failures == []
        for item_id in writer.acknowledged:  # every acknowledged write is in the index, whenever it came
            assert engine.get(item_id) is not None, item_id
    finally:
        engine.close()
    dest = backups / "pg-1"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert body["items"] == manifest["items"] >= 41 + len(acknowledged)
    assert body["store_seq"] == manifest["store_seq"] and body["files"] == len(manifest["files"])
    assert {f["path"] for f in manifest["files"]} >= {"store.pgdump"}
    assert sum(f["path"].startswith("media/") for f in manifest["files"]) == 1

    target = f"{new_database(postgres_server)}?schema={postgres_schema}&media={tmp_path / 'media2'}"
    assert main(["--index", target, "restore", str(dest)]) == 0
    restored = Engine.open(f"{target}&{vectors}&state={tmp_path / 'b'}")
    try:
        assert len(restored) == manifest["items"] and restored.last_seq() == manifest["store_seq"]
        assert all(restored.get(i) is not None for i in acknowledged)  # acknowledged before the backup began
        assert restored.backend.collection != engine.backend.collection  # type: ignore[attr-defined]
        assert restored.search(Query(text="item 7 word2", k=5, mode="dense")).hits.ids.tolist() == before
        pic = str(restored.get("pic").media["image"])
        assert restored.media.path(pic).read_bytes() == (tmp_path / "red.png").read_bytes()
    finally:
        restored.close()


# -- media in an S3-compatible bucket ---------------------------------------------------------------------
@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """moto's S3 server with one bucket; yields its endpoint and a boto3 client of it. moto keeps its buckets in
    the process, not in the server: they are reset before and after (other tests use the same bucket name)."""
    pytest.importorskip("moto", reason="moto's S3 server: pip install 'moto[server]'")
    boto3 = pytest.importorskip("boto3", reason="the s3 media store needs boto3: pip install 'xmodal[s3]'")
    from tests.fake_bedrock_server import moto_s3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_s3() as url:
        httpx.post(f"{url}/moto-api/reset").raise_for_status()
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket=BUCKET)
        try:
            yield url, client
        finally:
            httpx.post(f"{url}/moto-api/reset").raise_for_status()


def objects(client: Any, bucket: str = BUCKET) -> dict[str, bytes]:
    found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def test_post_backup_with_media_in_a_bucket_restores_them_into_another_bucket(
    s3: tuple[str, Any], postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    endpoint, client = s3
    media = f"media=s3://{BUCKET}/catalog&media_endpoint={endpoint}"
    url = f"{postgres_server.url}?schema={postgres_schema}&state={tmp_path / 'a'}&{media}"
    engine = Engine.open(url, encoder="hashing", dim=64, index="exact")
    colors = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    for n, color in enumerate(colors):
        (tmp_path / f"c{n}.png").write_bytes(png(color))
    engine.add([Item.create(f"t{i}", title=f"item {i} word{i % 5}") for i in range(20)])
    engine.add(
        [Item.create(f"p{n}", title=f"square {n}", image=f"c{n}.png") for n in range(3)]
        + [Item.create("again", title="the first square again", image="c0.png")],  # the same object
        base_dir=tmp_path,
    )
    before = engine.search(Query(text="square 1", k=4, mode="dense")).hits.ids.tolist()
    backups = tmp_path / "backups"
    try:
        with serve_in_thread(create_app(engine, ServeConfig(keys=KEYS, backup_dir=str(backups)))) as served:
            with RestWriter(served) as writer:
                while len(writer.acknowledged) < 3:
                    threading.Event().wait(0.05)
                acknowledged = list(writer.acknowledged)
                done = httpx.post(f"{served}/backup", json={"name": "s3-1"}, headers=A, timeout=300)
        assert done.status_code == 200, done.text
        assert writer.failures == [] and all(engine.get(i) is not None for i in writer.acknowledged)
        refs = {str(engine.get(f"p{n}").media["image"]) for n in range(3)}
    finally:
        engine.close()
    body, dest = done.json(), backups / "s3-1"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert body["missing_media"] == [] and body["items"] == manifest["items"] >= 24 + len(acknowledged)
    media_files = {f["path"] for f in manifest["files"] if f["path"].startswith("media/")}
    assert media_files == refs  # each object once, by its reference
    for ref in refs:  # the bucket's bytes, not a cached copy
        assert (dest / ref).read_bytes() == client.get_object(Bucket=BUCKET, Key=f"catalog/{ref}")["Body"].read()

    client.create_bucket(Bucket="restored")
    target_db = new_database(postgres_server)
    target = f"{target_db}?schema={postgres_schema}&media=s3://restored/copy&media_endpoint={endpoint}"
    assert main(["--index", target, "restore", str(dest), "--json"]) == 0
    assert set(objects(client, "restored")) == {f"copy/{ref}" for ref in refs}
    restored = Engine.open(f"{target}&state={tmp_path / 'b'}")
    try:
        assert len(restored) == manifest["items"]
        assert restored.search(Query(text="square 1", k=4, mode="dense")).hits.ids.tolist() == before
        for n in range(3):
            ref = str(restored.get(f"p{n}").media["image"])
            assert restored.media.path(ref).read_bytes() == (tmp_path / f"c{n}.png").read_bytes()
    finally:
        restored.close()
    # a second restore (--replace) into the same bucket finds the objects there: none is sent again
    report = restore_pg(dest, parse_postgres(target), replace=True)
    assert report["replaced"] and report["media_copied"] == 0


def test_a_backup_lists_objects_missing_from_the_bucket_or_changed_outside_xmodal(
    s3: tuple[str, Any], postgres_server: Any, postgres_schema: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, client = s3
    url = (
        f"{postgres_server.url}?schema={postgres_schema}&state={tmp_path / 'a'}"
        f"&media=s3://{BUCKET}/catalog&media_endpoint={endpoint}"
    )
    with Engine.open(url, encoder="hashing", dim=16) as engine:
        for n, color in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
            (tmp_path / f"c{n}.png").write_bytes(png(color))
        engine.add([Item.create(f"p{n}", title=f"square {n}", image=f"c{n}.png") for n in range(3)], base_dir=tmp_path)
        gone, changed, kept = (str(engine.get(f"p{n}").media["image"]) for n in range(3))
    client.delete_object(Bucket=BUCKET, Key=f"catalog/{gone}")
    client.put_object(Bucket=BUCKET, Key=f"catalog/{changed}", Body=b"not the picture")
    dest = tmp_path / "backup"
    assert main(["--index", url, "backup", str(dest), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["missing_media"]) == sorted([gone, changed])
    manifest = json.loads((dest / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"] if f["path"].startswith("media/")} == {kept}
    assert not (dest / changed).exists() and not (dest / gone).exists()

    target = f"{new_database(postgres_server)}?schema={postgres_schema}&media={tmp_path / 'm2'}"
    restore_pg(dest, parse_postgres(target))  # a folder target for a bucket's backup
    with Engine.open(f"{target}&state={tmp_path / 'b'}") as restored:
        assert restored.media.path(kept).read_bytes() == (tmp_path / "c2.png").read_bytes()
        with pytest.raises(NotFoundError):
            restored.media.path(gone)
