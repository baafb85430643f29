"""Several servers over one PostgreSQL store (issue 18, part 3): how soon a write acknowledged by one engine
is applied by another (LISTEN/NOTIFY, no read asking for it), the store's write throughput against the
SQLite store's in the same run, and (``--threads``) reads by several threads of one process while one thread
writes, through a pool of ``--threads`` + 1 connections against one connection (``pool_size=1``, how the store
worked before its pool), alternating. Prints JSON.

    python benchmarks/bench_postgres.py --writes 200 --items 2000 --batch 100 --threads 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from xmodal import Engine, Item, Query
from xmodal.store.postgres import PostgresStore
from xmodal.store.postgres_server import LocalPostgres
from xmodal.store.sqlite import SQLiteStore


def visibility(url: str, folder: Path, writes: int) -> dict[str, float]:
    """Seconds from an acknowledged add on one engine to the other engine having applied it; then both answer
    the same search (exact index: an approximate one may differ between two servers)."""
    first = Engine.open(f"{url}?schema=bench_vis&state={folder / 'a'}", encoder="hashing", dim=64, index="exact")
    second = Engine.open(f"{url}?schema=bench_vis&state={folder / 'b'}")
    lags, found, hits = [], 0, 0
    try:
        for i in range(writes):
            first.add([Item.create(f"v{i}", title=f"visible item {i}", attributes={"n": i})])
            start, target = time.perf_counter(), first.applied_seq()
            while second.applied_seq() < target:
                if time.perf_counter() - start > 5:
                    break
                time.sleep(0.0005)
            lags.append(time.perf_counter() - start)
            query = Query(text=f"visible item {i}", k=10, mode="dense", filters={"n": i})
            there = second.search(query).hits.ids.tolist()
            hits += there == [f"v{i}"]  # the new item, found through its attribute on the other server
            found += there == first.search(query).hits.ids.tolist()  # the same answer on both
    finally:
        first.close()
        second.close()
    ms = np.asarray(lags) * 1000
    return {
        "writes": writes,
        "found_on_other": hits,
        "same_answer_on_both": found,
        "lag_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "lag_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "lag_max_ms": round(float(ms.max()), 2),
    }


def throughput(store: PostgresStore | SQLiteStore, items: int, batch: int) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for b in range(0, items, batch):
        entries = [
            (Item.create(f"i{i}", title=f"item {i} red", text="some words here"), {"text": rng.random(384, np.float32)})
            for i in range(b, min(items, b + batch))
        ]
        store.put(entries)
    return items / (time.perf_counter() - start)


def concurrent(url: str, threads: int, pool_size: int, seconds: float) -> dict[str, float]:
    """``threads`` threads each reading 20 random items (with vectors) at a time for ``seconds``, while one more
    thread adds one item at a time, all through one store with a pool of ``pool_size`` connections."""
    store = PostgresStore(url, "bench_put", pool_size=pool_size)
    rows = store.catalog_rows().rows
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    writes = [0]

    def read(t: int) -> None:
        rng = np.random.default_rng(t)
        while not stop.is_set():
            start = time.perf_counter()
            store.get_rows([int(r) for r in rng.choice(rows, 20)])
            latencies[t].append(time.perf_counter() - start)

    def write() -> None:
        vector = {"text": np.ones(384, np.float32)}
        while not stop.is_set():
            store.put([(Item.create(f"c{pool_size}-{writes[0]}", title="concurrent write"), vector)])
            writes[0] += 1

    workers = [threading.Thread(target=read, args=(t,)) for t in range(threads)] + [threading.Thread(target=write)]
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    store.close()
    ms = np.concatenate([np.asarray(lat) for lat in latencies]) * 1000
    return {
        "reads_per_s": round(len(ms) / seconds, 1),
        "read_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "read_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "writes_per_s": round(writes[0] / seconds, 1),
    }


def pooled_vs_single(url: str, threads: int, seconds: float, rounds: int = 3) -> dict[str, object]:
    """:func:`concurrent` with ``threads`` connections and with one, alternating ``rounds`` times; the best of each."""
    runs: dict[str, list[dict[str, float]]] = {"pool": [], "single": []}
    for _ in range(rounds):
        runs["pool"].append(concurrent(url, threads, threads + 1, seconds))  # a connection for each thread
        runs["single"].append(concurrent(url, threads, 1, seconds))
    best = {name: max(found, key=lambda r: r["reads_per_s"]) for name, found in runs.items()}
    return {
        "threads": threads,
        "seconds_per_run": seconds,
        "runs": runs,
        "best": best,
        "reads_pool_vs_single": round(best["pool"]["reads_per_s"] / best["single"]["reads_per_s"], 3),
        "writes_pool_vs_single": round(best["pool"]["writes_per_s"] / max(best["single"]["writes_per_s"], 1e-9), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="also the concurrent reads, pool against one connection")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each concurrent run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as server:
        folder = Path(tmp)
        out: dict[str, object] = {"visibility": visibility(server.url, folder, args.writes)}
        pg = PostgresStore(server.url, "bench_put")
        lite = SQLiteStore(folder / "store.sqlite")
        try:
            pg_rate, lite_rate = throughput(pg, args.items, args.batch), throughput(lite, args.items, args.batch)
        finally:
            pg.close()
            lite.close()
        out["put_items_per_s"] = {"postgres": round(pg_rate), "sqlite": round(lite_rate)}
        out["postgres_vs_sqlite"] = round(pg_rate / lite_rate, 3)
        if args.threads:
            out["concurrent"] = pooled_vs_single(server.url, args.threads, args.seconds)
        out["note"] = "test server: fsync=off (synchronous_commit on); SQLite: synchronous=FULL"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
