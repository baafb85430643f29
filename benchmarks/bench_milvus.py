"""The ``milvus`` backend on a real Milvus 2.3.5 standalone server (the ``milvus`` package), at 100k 384-d
clustered vectors: insert throughput against pymilvus' own ``insert``, recall@10 (unfiltered and under a
5% filter, with k hits), and search latency against ``MilvusClient.search`` on the same collection.

Run:  python benchmarks/bench_milvus.py [--n 100000] [--queries 200] [--batch 2000] [--insert-only]

- insert: ``MilvusBackend.upsert`` of StoredItems (attributes encoded, keys; rows new to the collection are
  inserted, others upserted after the stale-kind check) into one collection, and ``MilvusClient.insert`` of the
  very same row dicts (made before the clock starts) into another of the same schema; rows per second of each,
  the same batches. ``--insert-only`` stops there (no flush, index build, recall or latency).
- then the xmodal collection is flushed and its HNSW index (M=16, efConstruction=200) built; recall@10
  of ``MilvusBackend.search`` against exact top-10 (numpy), unfiltered and with ``{"bucket": 3}`` (5% of
  the items), where every query must get 10 hits, all matching.
- latency: one query per call, p50/p95 of ``MilvusBackend.search`` and of ``MilvusClient.search`` with the
  same expression (``kind == "text"`` [and the translated filter]), the same search params and consistency,
  alternated query by query, and which of the two goes first alternates too (a call right after a filtered
  search is slower); ``p50_ratio_control`` is ``MilvusClient.search`` against itself placed the same way (≈ 1).

The query vectors are given: encoding is not included. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import clustered  # noqa: E402

from xmodal.backends import BackendContext  # noqa: E402
from xmodal.backends.milvus import MilvusBackend  # noqa: E402
from xmodal.backends.milvus_filters import FIELD, encode, translate  # noqa: E402
from xmodal.backends.milvus_server import LocalMilvus  # noqa: E402
from xmodal.filters import FilterExpr  # noqa: E402
from xmodal.records import Item  # noqa: E402
from xmodal.store.sqlite import StoredItem  # noqa: E402

BUCKETS = 20  # {"bucket": 3}: 5% of the items


def exact_top(base: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ base.T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    return np.argsort(-scores, axis=1)[:, :k]


def wait_indexed(backend: MilvusBackend, total: int, limit_s: float = 1800) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        info = backend.client.describe_index(backend.collection, "vector")
        if int(info.get("indexed_rows", 0)) >= total and int(info.get("pending_index_rows", 0)) == 0:
            return time.perf_counter() - start
        time.sleep(1.0)
    raise TimeoutError("the index was not built in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--ef", type=int, default=128)
    parser.add_argument("--insert-only", action="store_true", help="only the insert throughput figures")
    args = parser.parse_args()
    data = clustered(args.n + args.queries)
    base, queries = data[: args.n], data[args.n :]
    buckets = np.random.default_rng(5).integers(0, BUCKETS, args.n)
    stored = [
        StoredItem(
            i, Item.create(f"i{i}", title=f"item {i}", attributes={"bucket": int(buckets[i])}), {"text": base[i]}
        )
        for i in range(args.n)
    ]
    out: dict[str, Any] = {"n": args.n, "dim": int(base.shape[1]), "queries": args.queries, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp, LocalMilvus(Path(tmp) / "server") as server:
        options = {"uri": server.uri, "m": 16, "ef_construction": 200, "ef": args.ef}
        xm = MilvusBackend.open(BackendContext(Path(tmp) / "xmodal", base.shape[1], "hnsw", options))
        direct = MilvusBackend.open(BackendContext(Path(tmp) / "direct", base.shape[1], "hnsw", options))
        client = direct.client
        rows = [  # what pymilvus inserts: the same rows, made before its clock starts
            {
                "pk": f"{s.row}/text",
                "row": s.row,
                "kind": "text",
                FIELD: encode(s.item.attributes),
                "vector": base[s.row],
            }
            for s in stored
        ]
        timings = {"xmodal": 0.0, "pymilvus": 0.0}
        for start in range(0, args.n, args.batch):  # alternated batch by batch: the same machine load
            t = time.perf_counter()
            xm.upsert(stored[start : start + args.batch])
            timings["xmodal"] += time.perf_counter() - t
            t = time.perf_counter()
            client.insert(direct.collection, rows[start : start + args.batch])
            timings["pymilvus"] += time.perf_counter() - t
        out["insert_rows_per_s"] = {name: round(args.n / sec) for name, sec in timings.items()}
        out["insert_ratio_xmodal_to_pymilvus"] = round(timings["pymilvus"] / timings["xmodal"], 3)
        client.drop_collection(direct.collection)
        direct.close()
        if args.insert_only:
            xm.client.drop_collection(xm.collection)
            xm.close()
            print(json.dumps(out))
            return

        t = time.perf_counter()
        xm.client.flush(xm.collection)
        out["flush_s"] = round(time.perf_counter() - t, 1)
        out["index_build_s"] = round(wait_indexed(xm, args.n), 1)
        xm.client.release_collection(xm.collection)
        xm.client.load_collection(xm.collection)  # the sealed, indexed segments
        assert xm.count("text") == args.n

        where = FilterExpr.parse({"bucket": 3})
        assert where is not None
        allowed = buckets == 3
        out["filter_fraction"] = round(float(allowed.mean()), 4)
        truth = exact_top(base, queries, 10)
        truth_f = exact_top(base, queries, 10, allowed)
        got = xm.search(queries, 10, ["text"])
        got_f = xm.search(queries, 10, ["text"], where)
        out["recall_at_10"] = round(
            float(np.mean([len(set(a.rows.tolist()) & set(t.tolist())) / 10 for a, t in zip(got, truth, strict=True)])),
            4,
        )
        out["filtered_recall_at_10"] = round(
            float(
                np.mean([len(set(a.rows.tolist()) & set(t.tolist())) / 10 for a, t in zip(got_f, truth_f, strict=True)])
            ),
            4,
        )
        out["filtered_all_k_hits"] = all(len(a.rows) == 10 for a in got_f)
        out["filtered_only_matching"] = all(bool(allowed[a.rows].all()) for a in got_f)

        params = xm._search_params(10)
        expr_f = 'kind == "text" and ' + translate(where, lambda node: None)

        def ours(q: np.ndarray, filtered: bool) -> None:
            xm.search(q[None, :], 10, ["text"], where if filtered else None)

        def theirs(q: np.ndarray, filtered: bool) -> None:
            client_hits = xm.client.search(
                xm.collection,
                data=[q],
                limit=10,
                filter=expr_f if filtered else 'kind == "text"',
                output_fields=["row"],
                search_params=params,
                consistency_level=xm.consistency,
            )
            assert len(client_hits[0]) == 10

        # Which call goes first alternates query by query: the call right after a (slow) filtered search is
        # slower (an A/A control — MilvusClient.search against itself in the same places — reports it).
        calls = {"xmodal": ours, "direct": theirs, "control_a": theirs, "control_b": theirs}
        pairs = (("xmodal", "direct"), ("control_a", "control_b"))
        lat: dict[str, list[float]] = {name + sfx: [] for name in calls for sfx in ("", "_filtered")}
        for _ in range(2):  # warm-up round, then the measured one
            for values in lat.values():
                values.clear()
            for i, q in enumerate(queries):
                for pair in pairs:
                    for filtered in (False, True):
                        suffix = "_filtered" if filtered else ""
                        for name in pair if i % 2 == 0 else pair[::-1]:
                            t = time.perf_counter()
                            calls[name](q, filtered)
                            lat[name + suffix].append(time.perf_counter() - t)
        for name, values in lat.items():
            ms = np.array(values) * 1000
            out[f"{name}_p50_ms"] = round(float(np.percentile(ms, 50)), 3)
            out[f"{name}_p95_ms"] = round(float(np.percentile(ms, 95)), 3)
        out["p50_ratio_xmodal_to_direct"] = round(out["xmodal_p50_ms"] / out["direct_p50_ms"], 3)
        out["p50_ratio_xmodal_to_direct_filtered"] = round(
            out["xmodal_filtered_p50_ms"] / out["direct_filtered_p50_ms"], 3
        )
        out["p50_ratio_control"] = round(out["control_a_p50_ms"] / out["control_b_p50_ms"], 3)
        out["consistency"] = xm.consistency
        out["index"] = {"type": xm.index_type, **xm.params, "search": params["params"]}
        xm.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
