"""Media in an S3-compatible bucket: several servers of one ``postgres://`` index share it through boto3, each
with its own bounded read cache; run against moto's S3 server and the real PostgreSQL server, on 127.0.0.1."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import ConfigError, Engine, Item, NotFoundError, StorageError
from xmodal.location import parse_postgres
from xmodal.media_s3 import S3Location, S3MediaStore, parse_s3

pytest.importorskip("moto", reason="moto's S3 server: pip install 'moto[server]'")
pytest.importorskip("boto3", reason="the s3 media store needs boto3: pip install 'xmodal[s3]'")

from tests.fake_bedrock_server import moto_s3  # noqa: E402

BUCKET = "shop-media"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """moto's S3 server with one bucket; yields its endpoint and a boto3 client of it."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto_s3() as url:
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket=BUCKET)
        yield url, client


def keys(client: Any) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def png(color: tuple[int, int, int], size: int = 16) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


def test_two_servers_share_media_through_the_bucket(
    s3: tuple[str, Any], postgres_server: Any, postgres_schema: str, tmp_path: Path
) -> None:
    url, client = s3
    media = f"media=s3://{BUCKET}/catalog&media_endpoint={url}"
    first = Engine.open(
        f"{postgres_server.url}?schema={postgres_schema}&state={tmp_path / 'a'}&{media}", encoder="hashing", dim=64
    )
    second = Engine.open(f"{postgres_server.url}?schema={postgres_schema}&state={tmp_path / 'b'}&{media}")
    try:
        (tmp_path / "red.png").write_bytes(png((200, 10, 10)))
        (tmp_path / "blue.png").write_bytes(png((10, 10, 200)))
        first.add(
            [
                Item.create("red", title="red square", image="red.png"),
                Item.create("blue", title="blue square", image="blue.png"),
                Item.create("again", title="the red square again", image="red.png"),  # same bytes: one object
            ],
            base_dir=tmp_path,
        )
        ref = str(second.get("red").media["image"])
        assert keys(client) == sorted(f"catalog/{second.get(i).media['image']}" for i in ("red", "blue"))
        # the second server reads the file from the bucket (its guards already did, for their checks): downloaded,
        # checked against its hash and cached in its own state folder
        cached = tmp_path / "b" / "media-cache" / ref
        cached.unlink(missing_ok=True)
        path = second.media.path(ref)
        assert path == cached
        assert path.read_bytes() == (tmp_path / "red.png").read_bytes()
        # an erased item's object goes once no item holds it
        first.erase(["red"])
        assert f"catalog/{ref}" in keys(client)  # "again" still holds the same bytes
        first.erase(["again"])
        assert f"catalog/{ref}" not in keys(client)
        assert not (tmp_path / "a" / "media-cache" / ref).exists()
    finally:
        first.close()
        second.close()


def test_a_changed_object_is_refused_and_a_missing_one_is_not_found(s3: tuple[str, Any], tmp_path: Path) -> None:
    url, client = s3
    store = S3MediaStore(S3Location(BUCKET, "x/", url), tmp_path / "cache")
    ref = store.put(png((1, 2, 3)))
    client.put_object(Bucket=BUCKET, Key=f"x/{ref}", Body=png((3, 2, 1)))  # changed behind xmodal's back
    reader = S3MediaStore(S3Location(BUCKET, "x/", url), tmp_path / "other-cache")
    with pytest.raises(StorageError, match="does not match its hash"):
        reader.path(ref)
    client.delete_object(Bucket=BUCKET, Key=f"x/{ref}")
    with pytest.raises(NotFoundError, match="no media file"):
        reader.path(ref)
    with pytest.raises(NotFoundError):
        reader.path("media/../../etc/passwd")  # only content-hash references are ever fetched
    assert reader.remove(ref) is False


def test_the_read_cache_stays_within_its_bound(s3: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = s3
    writer = S3MediaStore(S3Location(BUCKET, "", url), tmp_path / "writer")
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes() for _ in range(8)]  # 8 × 300 kB, not images
    refs = [writer.put(b) for b in blobs]
    reader = S3MediaStore(S3Location(BUCKET, "", url, cache_mb=1), tmp_path / "reader")
    for _ in range(2):
        for ref, blob in zip(refs, blobs, strict=True):
            assert reader.path(ref).read_bytes() == blob  # evicted files come back from the bucket, intact
            held = sum(p.stat().st_size for p in (tmp_path / "reader").rglob("*") if p.is_file())
            assert held <= 1024 * 1024


def test_an_unreachable_bucket_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from xmodal.serve.testing import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    store = S3MediaStore(S3Location(BUCKET, "", f"http://127.0.0.1:{free_port()}", "us-east-1"), tmp_path)
    with pytest.raises(StorageError, match=rf"s3://{BUCKET}/media/.*could not be written.*the item was not added"):
        store.put(b"some bytes")


def test_media_locations(tmp_path: Path) -> None:
    base = f"postgres://u@127.0.0.1:5432/db?state={tmp_path}"
    where = parse_postgres(f"{base}&media=s3://bucket-1/a/b/&media_endpoint=http://127.0.0.1:9000&media_cache_mb=64")
    assert where.media == S3Location("bucket-1", "a/b/", "http://127.0.0.1:9000", None, 64)
    assert "media_endpoint" not in where.dsn
    assert parse_postgres(f"{base}&media={tmp_path / 'shared'}").media == tmp_path / "shared"
    assert parse_s3("s3://bucket-1").prefix == ""
    with pytest.raises(ConfigError, match="media_endpoint only go with a bucket"):
        parse_postgres(f"{base}&media_endpoint=http://127.0.0.1:9000")
    with pytest.raises(ConfigError, match="no valid bucket name"):
        parse_s3("s3://B/x")
    with pytest.raises(ConfigError, match="media_endpoint='127.0.0.1:9000'"):
        parse_s3("s3://bucket-1", endpoint="127.0.0.1:9000")
    with pytest.raises(ConfigError, match="media_cache_mb='lots'"):
        parse_s3("s3://bucket-1", cache_mb="lots")
