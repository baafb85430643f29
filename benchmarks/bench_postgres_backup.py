"""``xmodal backup`` / ``restore`` of a ``postgres://`` index (issue 18, follow-up): time and size of a backup and
a restore of ``--items`` items with 384-d vectors, against a bare ``pg_dump`` of the same schema in the same run
(the peer: what the backup adds is the snapshot coordination, the manifest's checksums and the media copy).
Prints JSON.

With ``--media N`` the first N items name a media file each (N distinct blobs of ``--media-kb`` KiB), kept in a
folder; with ``--s3`` also in an S3-compatible bucket (moto's S3 server, run as its own process on 127.0.0.1,
in memory: not a real S3's latency or throughput). Each round then backs up, beside the ``postgres://`` index
with folder media and the bare ``pg_dump``: the same index with its media in the bucket, and an index folder
(SQLite) holding the same items, vectors and media (``xmodal backup`` of a folder); and restores the bucket
backup into a new database and a new bucket.

    PYTHONPATH=src python benchmarks/bench_postgres_backup.py --items 20000
    PYTHONPATH=src python benchmarks/bench_postgres_backup.py --items 20000 --media 2000 --media-kb 64 --s3
    PYTHONPATH=src python benchmarks/bench_postgres_backup.py --items 2000 --media 1000 --s3 --s3-threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from xmodal import Item
from xmodal.location import parse_postgres
from xmodal.media import MediaStore, media_ref
from xmodal.store import postgres_backup
from xmodal.store.backup import write_backup
from xmodal.store.postgres import PostgresStore
from xmodal.store.postgres_backup import restore_pg, write_pg_backup
from xmodal.store.postgres_server import LocalPostgres, pg_bin
from xmodal.store.sqlite import SQLiteStore

SCHEMA = "bench_backup"
BUCKET = "bench-media"


def entries(items: int, refs: list[str], batch: int = 1000) -> Iterator[list[tuple[Item, dict[str, Any]]]]:
    """The items in batches, with their 384-d vectors; the first ``len(refs)`` name a media file each."""
    rng = np.random.default_rng(0)
    for start in range(0, items, batch):
        yield [
            (
                Item.create(
                    f"i{i}",
                    title=f"item {i}",
                    text="some words here",
                    media={"image": refs[i]} if i < len(refs) else None,
                ),
                {"text": rng.random(384, np.float32)},
            )
            for i in range(start, min(items, start + batch))
        ]


def fill(url: str, items: int, refs: list[str]) -> None:
    store = PostgresStore(url, SCHEMA)
    try:
        for batch in entries(items, refs):
            store.put(batch)
    finally:
        store.close()


def fill_folder(index: Path, items: int, refs: list[str], blobs: list[bytes]) -> None:
    """An index folder (SQLite store, media folder) with the same items, vectors and media."""
    index.mkdir()
    media = MediaStore(index)
    for blob in blobs:
        media.put(blob, ".bin")
    store = SQLiteStore(index / "store.sqlite")
    try:
        for batch in entries(items, refs):
            store.put(batch)
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server as a process of its own on 127.0.0.1 (not sharing this process's GIL); its URL."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--media", type=int, default=0, help="items naming a media file of their own")
    parser.add_argument("--media-kb", type=int, default=64, help="each media file's size in KiB")
    parser.add_argument("--s3", action="store_true", help="also the index with its media in a bucket (moto)")
    parser.add_argument(
        "--s3-threads", type=int, default=postgres_backup.S3_THREADS, help="objects copied at a time (xmodal's default)"
    )
    args = parser.parse_args()
    postgres_backup.S3_THREADS = args.s3_threads
    rng = np.random.default_rng(1)
    blobs = [rng.bytes(args.media_kb * 1024) for _ in range(min(args.media, args.items))]
    refs = [media_ref(blob, ".bin") for blob in blobs]
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as server:
        folder = Path(tmp)
        fill(server.url, args.items, refs)
        media = MediaStore(folder)
        for blob in blobs:
            media.put(blob, ".bin")
        url = f"{server.url}?schema={SCHEMA}&media={folder}"
        fill_folder(folder / "sqlite-index", args.items, refs, blobs)
        with moto_server() if args.s3 else _nothing() as endpoint:
            s3_url = ""
            if endpoint:
                os.environ.update(
                    AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
                )
                s3_url = f"{server.url}?schema={SCHEMA}&media=s3://{BUCKET}/m&media_endpoint={endpoint}"
                s3_url += f"&state={folder / 's3-state'}"
                bucket = parse_postgres(s3_url).open_media()
                bucket._client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
                for blob in blobs:
                    bucket.put(blob, ".bin")
            rounds = [one_round(r, server, folder, url, s3_url, args, blobs) for r in range(args.rounds)]
        print(
            json.dumps(
                {
                    "items": args.items,
                    "dim": 384,
                    "media": len(blobs),
                    "media_kb": args.media_kb,
                    "s3_threads": args.s3_threads,
                    "loadavg": os.getloadavg(),
                    "rounds": rounds,
                },
                indent=2,
            )
        )


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def one_round(
    r: int, server: Any, folder: Path, url: str, s3_url: str, args: argparse.Namespace, blobs: list[bytes]
) -> dict[str, Any]:
    start = time.perf_counter()
    manifest = write_pg_backup(parse_postgres(url), folder / f"backup{r}")
    backup_s = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [str(pg_bin() / "pg_dump"), "--format=custom", f"--schema={SCHEMA}", "--file", str(folder / f"peer{r}")]
        + ["--dbname", server.url],
        check=True,
    )
    peer_s = time.perf_counter() - start
    start = time.perf_counter()
    folder_manifest = write_backup(folder / "sqlite-index", folder / f"sqlite-backup{r}")
    sqlite_s = time.perf_counter() - start
    base = new_database(server, f"restored_{r}")
    target = f"{base}?schema={SCHEMA}&media={folder / 'media2'}"
    start = time.perf_counter()
    report = restore_pg(folder / f"backup{r}", parse_postgres(target))
    restore_s = time.perf_counter() - start
    restored = count(base)
    result: dict[str, Any] = {
        "backup_s": round(backup_s, 3),
        "pg_dump_s": round(peer_s, 3),
        "backup_vs_pg_dump": round(backup_s / peer_s, 3),
        "restore_s": round(restore_s, 3),
        "backup_mb": round(manifest.bytes / 1e6, 2),
        "pg_dump_mb": round((folder / f"peer{r}").stat().st_size / 1e6, 2),
        "sqlite_folder_backup_s": round(sqlite_s, 3),
        "sqlite_folder_backup_mb": round(folder_manifest.bytes / 1e6, 2),
        "items_backed_up": manifest.items,
        "items_restored": restored,
        "media_backed_up": sum(f.path.startswith("media/") for f in manifest.files),
        "restored_whole": restored == manifest.items == args.items and report["items"] == args.items,
    }
    if s3_url:
        start = time.perf_counter()
        s3_manifest = write_pg_backup(parse_postgres(s3_url), folder / f"s3-backup{r}")
        s3_s = time.perf_counter() - start
        bucket = f"restored-{r}"
        parse_postgres(s3_url).open_media()._client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        base = new_database(server, f"restored_s3_{r}")
        endpoint = s3_url.split("media_endpoint=", 1)[1].split("&", 1)[0]
        target = f"{base}?schema={SCHEMA}&media=s3://{bucket}/m&media_endpoint={endpoint}&state={folder / 's3-r'}"
        start = time.perf_counter()
        s3_report = restore_pg(folder / f"s3-backup{r}", parse_postgres(target))
        s3_restore_s = time.perf_counter() - start
        result.update(
            {
                "s3_backup_s": round(s3_s, 3),
                "s3_backup_mb": round(s3_manifest.bytes / 1e6, 2),
                "s3_backup_vs_sqlite_folder": round(s3_s / sqlite_s, 3),
                "s3_backup_vs_folder_media": round(s3_s / backup_s, 3),
                "s3_media_backed_up": sum(f.path.startswith("media/") for f in s3_manifest.files),
                "s3_missing_media": len(s3_manifest.missing_media),
                "s3_restore_s": round(s3_restore_s, 3),
                "s3_media_uploaded": s3_report["media_copied"],
                "s3_restored_whole": count(base) == s3_manifest.items == args.items
                and s3_report["media_copied"] == len(blobs),
            }
        )
    return result


def new_database(server: Any, name: str) -> str:
    subprocess.run([str(pg_bin() / "psql"), "-X", "-q", "-d", server.url, "-c", f"CREATE DATABASE {name}"], check=True)
    return str(server.url.rsplit("/", 1)[0] + f"/{name}")


def count(base: str) -> int:
    check = PostgresStore(base, SCHEMA)
    try:
        return check.count()
    finally:
        check.close()


if __name__ == "__main__":
    main()
