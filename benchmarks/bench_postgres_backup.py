"""``xmodal backup`` / ``restore`` of a ``postgres://`` index (issue 18, follow-up): time and size of a backup and
a restore of ``--items`` items with 384-d vectors, against a bare ``pg_dump`` of the same schema in the same run
(the peer: what the backup adds is the snapshot coordination, the manifest's checksums and the media copy).
Prints JSON.

    PYTHONPATH=src python benchmarks/bench_postgres_backup.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from xmodal import Item
from xmodal.location import parse_postgres
from xmodal.store.postgres import PostgresStore
from xmodal.store.postgres_backup import restore_pg, write_pg_backup
from xmodal.store.postgres_server import LocalPostgres, pg_bin

SCHEMA = "bench_backup"


def fill(url: str, items: int, batch: int = 1000) -> None:
    rng = np.random.default_rng(0)
    store = PostgresStore(url, SCHEMA)
    try:
        for start in range(0, items, batch):
            store.put(
                [
                    (
                        Item.create(f"i{i}", title=f"item {i}", text="some words here"),
                        {"text": rng.random(384, np.float32)},
                    )
                    for i in range(start, min(items, start + batch))
                ]
            )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as server:
        folder = Path(tmp)
        fill(server.url, args.items)
        url = f"{server.url}?schema={SCHEMA}&media={folder / 'media'}"
        rounds = []
        for r in range(args.rounds):
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
            database = f"restored_{r}"
            subprocess.run(
                [str(pg_bin() / "psql"), "-X", "-q", "-d", server.url, "-c", f"CREATE DATABASE {database}"], check=True
            )
            base = server.url.rsplit("/", 1)[0] + f"/{database}"
            target = f"{base}?schema={SCHEMA}&media={folder / 'media2'}"
            start = time.perf_counter()
            report = restore_pg(folder / f"backup{r}", parse_postgres(target))
            restore_s = time.perf_counter() - start
            check = PostgresStore(base, SCHEMA)
            restored = check.count()
            check.close()
            rounds.append(
                {
                    "backup_s": round(backup_s, 3),
                    "pg_dump_s": round(peer_s, 3),
                    "backup_vs_pg_dump": round(backup_s / peer_s, 3),
                    "restore_s": round(restore_s, 3),
                    "backup_mb": round(manifest.bytes / 1e6, 2),
                    "pg_dump_mb": round((folder / f"peer{r}").stat().st_size / 1e6, 2),
                    "items_backed_up": manifest.items,
                    "items_restored": restored,
                    "restored_whole": restored == manifest.items == args.items and report["items"] == args.items,
                }
            )
        print(json.dumps({"items": args.items, "dim": 384, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
