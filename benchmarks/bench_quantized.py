"""The ``quantized`` backend at scale: memory per vector, recall@10 after rescoring, latency, build time,
with FAISS HNSW over float32 (the ``local`` backend's ``hnsw`` index) in the same table as the anchor.

Run:  python benchmarks/bench_quantized.py [--n 1000000] [--queries 1000] [--data clustered|wordnet|both]
      [--anchor | --no-anchor] [--options '{"ef_search": 128}'] [--workdir benchmarks/out/quantized]

Data (384-d, L2-normalised):
- ``clustered``: the synthetic Gaussian clusters of ``bench_search.py`` (nearest-neighbour cosine ~0.6).
- ``wordnet``: all-MiniLM-L6-v2 embeddings of the ~117k WordNet glosses (Debian ``wordnet-base``, cached by
  ``bench_search.py --prepare``), repeated with Gaussian noise of norm ``--noise`` and renormalised up to
  ``--n``; queries are the embeddings of 1,000 synsets' lemma names.

Each backend is built in a child process (``upsert`` in batches of ``--batch`` rows, a checkpoint after each,
as the engine would), then opened from its checkpoint in a fresh child that measures what the open costs in
anonymous memory (``RssAnon``: the graph, the codes and the arrays; the full vectors the quantized backend
maps from disk are file-backed pages the OS may drop, reported apart as ``rss_file``), then the latency of
single queries (k=10, warm page cache) and recall@10 against the exact top 10. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "out"
K = 10
#: Search-time settings of the quantized index measured on the same build (300 queries each).
SWEEP = [(64, 10), (128, 10), (128, 20), (256, 20), (256, 40), (512, 50)]
ANCHOR_OPTIONS = {"m": 32, "ef_construction": 40, "ef_search": 128}


# -- data ------------------------------------------------------------------------------------------------
def make_data(name: str, n: int, n_queries: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    import bench_search

    if name == "clustered":
        data = bench_search.clustered(n + n_queries)
        return data[:n], np.ascontiguousarray(data[n:])
    glosses, lemmas = bench_search.wordnet_vectors()
    rng = np.random.default_rng(5)
    docs = np.empty((n, glosses.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(n, start + 100_000))
        jitter = rng.standard_normal((len(rows), glosses.shape[1])).astype(np.float32)
        jitter *= np.float32(noise / np.sqrt(glosses.shape[1]))
        jitter[rows < len(glosses)] = 0  # the first copy is the real vector
        chunk = glosses[rows % len(glosses)] + jitter
        docs[rows] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return docs, np.ascontiguousarray(lemmas[:n_queries])


def exact_top(docs: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows per query (chunked matrix products)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(docs), 200_000):
        scores = queries @ docs[start : start + 200_000].T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, axis=1), np.take_along_axis(i, keep, axis=1)
    return best_i


# -- children ----------------------------------------------------------------------------------------------
def context(folder: Path, backend: str, options: dict[str, Any]) -> Any:
    from xmodal.backends import BackendContext

    return BackendContext(folder, 384, "hnsw" if backend == "local" else "auto", options, None)


def build(folder: Path, docs_path: Path, backend: str, options: dict[str, Any], batch: int) -> dict[str, Any]:
    from xmodal.backends import open_backend
    from xmodal.records import Item
    from xmodal.store.sqlite import StoredItem

    docs = np.load(docs_path, mmap_mode="r")
    item = Item.create("x", title="x")  # the backend reads rows and vectors only
    opened = open_backend(backend, context(folder, backend, options))
    t0 = time.perf_counter()
    for seq, start in enumerate(range(0, len(docs), batch), 1):
        chunk = np.ascontiguousarray(docs[start : start + batch])
        opened.upsert([StoredItem(start + i, item, {"text": v}) for i, v in enumerate(chunk)])  # type: ignore[dict-item]
        opened.checkpoint(seq)
    seconds = time.perf_counter() - t0
    return {"build_s": round(seconds, 1), "count": opened.count("text")}


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve(folder: Path, queries_path: Path, truth_path: Path, backend: str, options: dict[str, Any]) -> dict[str, Any]:
    from xmodal.backends import open_backend

    queries, truth = np.load(queries_path), np.load(truth_path)
    import faiss  # noqa: F401  # the libraries' and modules' own memory is not the index's

    import xmodal.backends.local
    import xmodal.backends.quantized
    import xmodal.index.hnsw  # noqa: F401

    anon0, file0 = status_kb("RssAnon"), status_kb("RssFile")
    t0 = time.perf_counter()
    opened = open_backend(backend, context(folder, backend, options))
    open_s = time.perf_counter() - t0
    anon1 = status_kb("RssAnon")
    n = opened.count("text")
    found = np.full((len(queries), K), -1, dtype=np.int64)
    for q in queries[:50]:  # warm-up
        opened.search(q[None, :], K, ["text"])
    samples = []
    for i, q in enumerate(queries):
        t = time.perf_counter_ns()
        rows = opened.search(q[None, :], K, ["text"])[0].rows
        samples.append(time.perf_counter_ns() - t)
        found[i, : len(rows)] = rows
    recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))
    ms = np.asarray(samples) / 1e6
    swept = sweep(opened, queries, truth) if backend == "quantized" else []
    return {
        "sweep": swept,
        "count": n,
        "ram_bytes_per_vector": round((anon1 - anon0) * 1024 / n, 1),
        "ram_mb": round((anon1 - anon0) / 1024, 1),
        "rss_file_mb_after_queries": round((status_kb("RssFile") - file0) / 1024, 1),
        "open_s": round(open_s, 2),
        "recall_at_10": round(recall, 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "disk_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1),
    }


def sweep(opened: Any, queries: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Recall and p50 of the quantized index at other search-time settings (the same built index)."""
    index = opened.indexes["text"]
    out = []
    for ef, rescore in SWEEP:
        index.tune(ef_search=ef, rescore=rescore)
        samples, recalls = [], []
        for q, t in zip(queries[:300], truth, strict=False):
            t0 = time.perf_counter_ns()
            rows = opened.search(q[None, :], K, ["text"])[0].rows
            samples.append(time.perf_counter_ns() - t0)
            recalls.append(len(set(rows.tolist()) & set(t.tolist())) / K)
        p50 = float(np.percentile(np.asarray(samples) / 1e6, 50))
        out.append(
            {
                "ef_search": ef,
                "rescore": rescore,
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "p50_ms": round(p50, 3),
            }
        )
    return out


def child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- main ---------------------------------------------------------------------------------------------------
def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir) / f"{name}-{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    docs_path, queries_path, truth_path = work / "docs.npy", work / "queries.npy", work / "truth.npy"
    t0 = time.perf_counter()
    docs, queries = make_data(name, args.n, args.queries, args.noise)
    np.save(docs_path, docs)
    np.save(queries_path, queries)
    np.save(truth_path, exact_top(docs, queries, K))
    del docs
    out: dict[str, Any] = {"data_s": round(time.perf_counter() - t0, 1)}
    options = json.loads(args.options)
    runs = [("quantized", "quantized", options)] + (
        [("anchor_hnsw_float32", "local", ANCHOR_OPTIONS)] if args.anchor else []
    )
    for label, backend, opts in runs:
        folder = work / label
        spec = json.dumps(opts)
        built = child(["build", str(folder), str(docs_path), backend, spec, str(args.batch)])
        served = child(["serve", str(folder), str(queries_path), str(truth_path), backend, spec])
        out[label] = {"backend": backend, "options": opts, **built, **served}
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, folder, *rest = sys.argv[2:]
        if what == "build":
            docs, backend, spec, batch = rest
            print(json.dumps(build(Path(folder), Path(docs), backend, json.loads(spec), int(batch))))
        else:
            queries, truth, backend, spec = rest
            print(json.dumps(serve(Path(folder), Path(queries), Path(truth), backend, json.loads(spec))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data", choices=["clustered", "wordnet", "both"], default="both")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to repeated WordNet vectors")
    parser.add_argument("--batch", type=int, default=250_000, help="rows per upsert (a checkpoint after each)")
    parser.add_argument("--options", default="{}", help="the quantized backend's index options (JSON)")
    parser.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--workdir", default=str(OUT / "quantized"))
    parser.add_argument("--keep", action="store_true", help="keep the data and the built indexes")
    args = parser.parse_args()
    names = ["clustered", "wordnet"] if args.data == "both" else [args.data]
    result: dict[str, Any] = {
        "n": args.n,
        "dim": 384,
        "k": K,
        "queries": args.queries,
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg()[0],
    }
    for name in names:
        result[name] = run(name, args)
    result["load_avg_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
