"""The ``quantized`` backend at scale: memory per vector, recall@10 after rescoring, latency, build time,
for its two layouts (``hnsw``: a graph over 8-bit codes; ``ivf``: inverted lists of 8-bit codes), with FAISS
HNSW over float32 (the ``local`` backend's ``hnsw`` index) in the same table as the anchor.

Run:  python benchmarks/bench_quantized.py [--n 1000000] [--queries 1000] [--data clustered|wordnet|both]
      [--layout hnsw|ivf|both] [--glosses 0] [--anchor | --no-anchor] [--options '{"ef_search": 128}']
      [--ivf-options '{"nlist": 4096, "nprobe": 32}'] [--batch 250000] [--checkpoint-every 1]
      [--workdir benchmarks/out/quantized]

Data (384-d, L2-normalised), generated in chunks by each build (never held whole, never written: 10M
vectors are 15 GB):
- ``clustered``: the synthetic Gaussian clusters of ``bench_search.py`` (nearest-neighbour cosine ~0.6):
  the documents are the first n rows of ``bench_search.clustered(n + queries)``; the queries are drawn
  from the same clusters with another seed.
- ``wordnet``: all-MiniLM-L6-v2 embeddings of the ~117k WordNet glosses (Debian ``wordnet-base``, cached by
  ``bench_search.py --prepare``), repeated with Gaussian noise of norm ``--noise`` and renormalised up to
  ``--n``; queries are the embeddings of 1,000 synsets' lemma names. ``--glosses G`` repeats only G glosses
  (the queries' own synsets and a seeded sample of the others), so a smaller n has the copies per gloss of
  a larger one: ``--n 1000000 --glosses 11765`` has the ~85 copies per gloss of all 117,659 at 10M.

Recall is reported twice: ``recall_at_10``, the share of the exact top 10 (by id) found, and beside it
``ann_recall_at_10``, ann-benchmarks' looser count (a hit counts if its exact score is within 1e-3 of the
true 10th best), which forgives swaps among near-ties.

Each backend is built in a child process (``upsert`` in batches of ``--batch`` rows, a checkpoint after
every ``--checkpoint-every`` batches and at the end, as the engine would; ``build_s`` counts only the
upserts and checkpoints, not the data generation nor the exact top 10 the first build computes on the
way; ``build_cpu_s`` is the CPU time of those, all threads: on a loaded machine, half of it bounds what
two idle cores would take), then opened from its checkpoint in a fresh child that measures what the open costs in anonymous
memory (``RssAnon``: the graph or lists, the codes and the arrays; the full vectors the quantized backend
maps from disk are file-backed pages the OS may drop, reported apart as ``rss_file``), then the latency of
single queries (k=10) and recall@10 against the exact top 10, and a sweep of search-time settings on the
same build. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "out"
K = 10
#: Search-time settings measured on the same build (300 queries each): (efSearch, rescore) for the hnsw
#: layout, (nprobe, rescore) for the ivf layout.
SWEEP = [
    (64, 10),
    (128, 10),
    (128, 20),
    (256, 20),
    (256, 40),
    (512, 50),
    (1024, 40),
    (2048, 40),
    (3072, 40),
    (4096, 40),
]
SWEEP_IVF = [(8, 10), (16, 10), (16, 20), (32, 10), (32, 20), (64, 20), (128, 20), (128, 40), (256, 20), (256, 40)]
#: Beyond 256 lists (the many small lists of ``kmeans_iters: 0``, ~8-150 vectors each: issue 18).
SWEEP_IVF += [(512, 20), (512, 40), (1024, 40), (2048, 40), (4096, 40)]
#: With the HNSW coarse quantizer: (nprobe, rescore, efSearch of the walk over the centroids).
SWEEP_COARSE = [(64, 20, 256), (64, 20, 512), (128, 20, 512), (128, 20, 1024), (256, 20, 1024), (256, 20, 2048)]
ANCHOR_OPTIONS = {"m": 32, "ef_construction": 40, "ef_search": 128}
CHUNK = 10_000
#: The ann-benchmarks tolerance: a hit within this of the true 10th best score counts (ann_recall_at_10).
ANN_EPSILON = 1e-3


# -- data ------------------------------------------------------------------------------------------------
def clustered_queries(n: int, n_queries: int, clusters: int = 400, rank: int = 64, dim: int = 384) -> np.ndarray:
    """Queries from the clusters of :func:`clustered_docs` (same centres, bases and spreads; seed 12)."""
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    bases = rng.standard_normal((clusters, rank, dim)).astype(np.float32)
    rng.integers(0, clusters, n + n_queries)  # the documents' draw of clusters (the spreads are drawn after it)
    spread = rng.uniform(0.6 * 0.9, 1.4 * 0.9, clusters).astype(np.float32)
    q = np.random.default_rng(12)
    which = q.integers(0, clusters, n_queries)
    coef = q.standard_normal((n_queries, rank)).astype(np.float32) * spread[which, None] / np.sqrt(rank)
    out = centers[which] + np.einsum("nr,nrd->nd", coef, bases[which]) + 0.5 * q.standard_normal((n_queries, dim))
    out = out.astype(np.float32)
    return np.ascontiguousarray(out / np.linalg.norm(out, axis=1, keepdims=True))


def clustered_docs(n: int, n_queries: int, clusters: int = 400, rank: int = 64, dim: int = 384) -> Iterator[np.ndarray]:
    """The first n rows of ``bench_search.clustered(n + n_queries)`` in chunks (the same draws in the same
    order, so the same vectors up to float rounding: a matrix product per cluster instead of one einsum,
    ~15x faster), without holding them all."""
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    bases = rng.standard_normal((clusters, rank, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n + n_queries)
    spread_of = rng.uniform(0.6 * 0.9, 1.4 * 0.9, clusters).astype(np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n + n_queries, start + CHUNK)
        rows = which[start:stop]
        coef = rng.standard_normal((stop - start, rank)).astype(np.float32) * spread_of[rows, None] / np.sqrt(rank)
        out = 0.5 * rng.standard_normal((stop - start, dim)).astype(np.float32)
        out += centers[rows]
        order = np.argsort(rows, kind="stable")
        bounds = np.searchsorted(rows[order], np.arange(clusters + 1))
        for c in np.flatnonzero(np.diff(bounds)).tolist():
            idx = order[bounds[c] : bounds[c + 1]]
            out[idx] += coef[idx] @ bases[c]
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield out[: min(stop, n) - start]


def gloss_subset(count: int, total: int, n_queries: int) -> np.ndarray:
    """Positions of ``count`` of the ``total`` glosses: the queries' own synsets (the lemma queries are the
    synsets ``bench_search.wordnet_vectors`` drew with seed 7), then a seeded sample of the others."""
    own = np.unique(np.random.default_rng(7).choice(total, 2000, replace=False)[:n_queries])
    if count < len(own):
        raise SystemExit(f"--glosses {count} is fewer than the queries' own {len(own)} glosses")
    others = np.setdiff1d(np.arange(total), own)
    return np.sort(np.concatenate([own, np.random.default_rng(8).choice(others, count - len(own), replace=False)]))


def wordnet_docs(n: int, noise: float, glosses_used: int = 0, n_queries: int = 1000) -> Iterator[np.ndarray]:
    import bench_search

    glosses, _ = bench_search.wordnet_vectors()
    if glosses_used:
        glosses = glosses[gloss_subset(glosses_used, len(glosses), n_queries)]
    rng = np.random.default_rng(5)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(n, start + 100_000))
        jitter = rng.standard_normal((len(rows), glosses.shape[1])).astype(np.float32)
        jitter *= np.float32(noise / np.sqrt(glosses.shape[1]))
        jitter[rows < len(glosses)] = 0  # the first copy is the real vector
        chunk = glosses[rows % len(glosses)] + jitter
        yield chunk / np.linalg.norm(chunk, axis=1, keepdims=True)


def make_queries(name: str, n: int, n_queries: int) -> np.ndarray:
    if name == "clustered":
        return clustered_queries(n, n_queries)
    import bench_search

    _, lemmas = bench_search.wordnet_vectors()
    return np.ascontiguousarray(lemmas[:n_queries])


def docs_stream(name: str, n: int, n_queries: int, noise: float, glosses: int = 0) -> Iterator[np.ndarray]:
    return clustered_docs(n, n_queries) if name == "clustered" else wordnet_docs(n, noise, glosses, n_queries)


class ExactTop:
    """The exact top-k rows per query, updated chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = queries
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.rows = np.full((len(queries), k), -1, dtype=np.int64)
        self.k = k

    def update(self, chunk: np.ndarray, start: int) -> None:
        scores = self.queries @ chunk.T
        top = np.argpartition(-scores, min(self.k, chunk.shape[0]) - 1, axis=1)[:, : self.k]
        s = np.concatenate([self.scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        i = np.concatenate([self.rows, top + start], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, : self.k]
        self.scores, self.rows = np.take_along_axis(s, keep, axis=1), np.take_along_axis(i, keep, axis=1)


# -- children ----------------------------------------------------------------------------------------------
def context(folder: Path, backend: str, options: dict[str, Any]) -> Any:
    from xmodal.backends import BackendContext

    return BackendContext(folder, 384, "hnsw" if backend == "local" else "auto", options, None)


def build(folder: Path, work: Path, backend: str, options: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Upsert the data set in batches (a checkpoint every ``checkpoint_every`` batches and at the end);
    computes the exact top 10 on the way when ``work`` has none yet."""
    from xmodal.backends import open_backend
    from xmodal.records import Item
    from xmodal.store.sqlite import StoredItem

    n, batch, every = int(spec["n"]), int(spec["batch"]), int(spec["checkpoint_every"])
    truth_path = work / "truth.npy"
    exact = None if truth_path.exists() else ExactTop(np.load(work / "queries.npy"), K)
    item = Item.create("x", title="x")  # the backend reads rows and vectors only
    opened = open_backend(backend, context(folder, backend, options))
    timing = {"build_s": 0.0, "build_cpu_s": 0.0, "data_s": 0.0, "truth_s": 0.0}
    pending: list[np.ndarray] = []
    done = batches = 0
    stream = docs_stream(spec["data"], n, int(spec["queries"]), float(spec["noise"]), int(spec.get("glosses", 0)))
    while done < n:
        t0 = time.perf_counter()
        chunk = next(stream)
        timing["data_s"] += time.perf_counter() - t0
        if exact is not None:
            t0 = time.perf_counter()
            exact.update(chunk, done + sum(len(c) for c in pending))
            timing["truth_s"] += time.perf_counter() - t0
        pending.append(chunk)
        held = sum(len(c) for c in pending)
        if held < batch and done + held < n:
            continue
        vectors = np.concatenate(pending)
        pending = []
        t0, c0 = time.perf_counter(), time.process_time()
        opened.upsert([StoredItem(done + i, item, {"text": v}) for i, v in enumerate(vectors)])  # type: ignore[dict-item]
        batches += 1
        done += len(vectors)
        if batches % every == 0 or done >= n:
            opened.checkpoint(batches)
        timing["build_s"] += time.perf_counter() - t0
        timing["build_cpu_s"] += time.process_time() - c0  # every thread of this process
        print(f"{time.strftime('%H:%M:%S')} {done} rows, build {timing['build_s']:.0f} s", file=sys.stderr, flush=True)
    if exact is not None:
        np.save(truth_path, exact.rows)
        np.save(work / "truth_scores.npy", exact.scores)
    index = opened.indexes["text"]  # type: ignore[attr-defined]
    lists = getattr(index, "nlist", None)
    return {
        **{name: round(value, 1) for name, value in timing.items()},
        "count": opened.count("text"),
        "build_peak_rss_mb": round(status_kb("VmHWM") / 1024, 1),
        **({"lists": lists} if lists is not None else {}),
    }


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve(folder: Path, work: Path, backend: str, options: dict[str, Any]) -> dict[str, Any]:
    from xmodal.backends import open_backend

    queries, truth = np.load(work / "queries.npy"), np.load(work / "truth.npy")
    tenth = np.load(work / "truth_scores.npy")[:, K - 1]
    import faiss  # noqa: F401  # the libraries' and modules' own memory is not the index's

    import xmodal.backends.local
    import xmodal.backends.quantized
    import xmodal.index.hnsw
    import xmodal.index.quantized_ivf  # noqa: F401

    anon0, file0 = status_kb("RssAnon"), status_kb("RssFile")
    t0 = time.perf_counter()
    opened = open_backend(backend, context(folder, backend, options))
    open_s = time.perf_counter() - t0
    anon1 = status_kb("RssAnon")
    n = opened.count("text")
    found = np.full((len(queries), K), -1, dtype=np.int64)
    within = np.zeros(len(queries))
    for q in queries[:50]:  # warm-up
        opened.search(q[None, :], K, ["text"])
    samples = []
    for i, q in enumerate(queries):
        t = time.perf_counter_ns()
        hits = opened.search(q[None, :], K, ["text"])[0]
        samples.append(time.perf_counter_ns() - t)
        found[i, : len(hits.rows)] = hits.rows
        within[i] = ann_hits(hits.scores, tenth[i])
    recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))
    ms = np.asarray(samples) / 1e6
    swept = sweep(opened, queries, truth, tenth, options.get("layout", "hnsw")) if backend == "quantized" else []
    return {
        "sweep": swept,
        "count": n,
        "ram_bytes_per_vector": round((anon1 - anon0) * 1024 / n, 1),
        "ram_mb": round((anon1 - anon0) / 1024, 1),
        "rss_file_mb_after_queries": round((status_kb("RssFile") - file0) / 1024, 1),
        "open_s": round(open_s, 2),
        "recall_at_10": round(recall, 4),
        "ann_recall_at_10": round(float(np.mean(within)), 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "disk_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1),
    }


def ann_hits(scores: np.ndarray, tenth: float) -> float:
    """The ann-benchmarks-style recall of one query: the share of its k hits whose exact score is within
    ``ANN_EPSILON`` of the true k-th best (a hit tied with the k-th within that margin counts). Reported
    beside the strict recall@10 (the share of the true top 10 ids found), never instead of it."""
    return float(np.sum(np.asarray(scores) >= tenth - ANN_EPSILON)) / K


def sweep(opened: Any, queries: np.ndarray, truth: np.ndarray, tenth: np.ndarray, layout: str) -> list[dict[str, Any]]:
    """Recall and p50 of the quantized index at other search-time settings (the same built index)."""
    index = opened.indexes["text"]
    out = []
    settings = [(depth, rescore, 0) for depth, rescore in (SWEEP if layout == "hnsw" else SWEEP_IVF)]
    if layout == "ivf" and index.options.get("coarse") == "hnsw":
        settings += SWEEP_COARSE
    for depth, rescore, coarse_ef in settings:
        if layout == "hnsw":
            index.tune(ef_search=depth, rescore=rescore)
        else:
            index.tune(nprobe=depth, rescore=rescore, coarse_ef=coarse_ef or 64)
        samples, recalls, within = [], [], []
        for q, t, tt in zip(queries[:300], truth, tenth, strict=False):
            t0 = time.perf_counter_ns()
            hits = opened.search(q[None, :], K, ["text"])[0]
            samples.append(time.perf_counter_ns() - t0)
            recalls.append(len(set(hits.rows.tolist()) & set(t.tolist())) / K)
            within.append(ann_hits(hits.scores, float(tt)))
        p50 = float(np.percentile(np.asarray(samples) / 1e6, 50))
        out.append(
            {
                "ef_search" if layout == "hnsw" else "nprobe": depth,
                "rescore": rescore,
                **({"coarse_ef": coarse_ef} if coarse_ef else {}),
                "recall_at_10": round(float(np.mean(recalls)), 4),
                "ann_recall_at_10": round(float(np.mean(within)), 4),
                "p50_ms": round(p50, 3),
            }
        )
    return out


def child(args: list[str]) -> dict[str, Any]:
    """Run a child; its progress lines (stderr) pass through, its last stdout line is its JSON."""
    done = subprocess.run([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"child {args[:2]} failed (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- main ---------------------------------------------------------------------------------------------------
def run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir) / f"{name}-{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "queries.npy", make_queries(name, args.n, args.queries))
    (work / "truth.npy").unlink(missing_ok=True)  # the first build computes it
    spec = {
        "data": name,
        "n": args.n,
        "queries": args.queries,
        "noise": args.noise,
        "glosses": args.glosses,
        "batch": args.batch,
        "checkpoint_every": args.checkpoint_every,
    }
    layouts = ["hnsw", "ivf"] if args.layout == "both" else [args.layout]
    runs = [
        (
            "quantized" if layout == "hnsw" else "quantized_ivf",
            "quantized",
            json.loads(args.options) if layout == "hnsw" else {"layout": "ivf", **json.loads(args.ivf_options)},
        )
        for layout in layouts
    ] + ([("anchor_hnsw_float32", "local", ANCHOR_OPTIONS)] if args.anchor else [])
    out: dict[str, Any] = {}
    for label, backend, opts in runs:
        folder = work / label
        built = child(["build", str(folder), str(work), backend, json.dumps(opts), json.dumps(spec)])
        served = child(["serve", str(folder), str(work), backend, json.dumps(opts)])
        out[label] = {"backend": backend, "options": opts, **built, **served, "load_avg_after": os.getloadavg()[0]}
        print(json.dumps({label: out[label]}), file=sys.stderr, flush=True)
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, folder, work, backend, options, *rest = sys.argv[2:]
        if what == "build":
            print(json.dumps(build(Path(folder), Path(work), backend, json.loads(options), json.loads(rest[0]))))
        else:
            print(json.dumps(serve(Path(folder), Path(work), backend, json.loads(options))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data", choices=["clustered", "wordnet", "both"], default="both")
    parser.add_argument("--layout", choices=["hnsw", "ivf", "both"], default="both")
    parser.add_argument("--noise", type=float, default=0.3, help="norm of the noise added to repeated WordNet vectors")
    parser.add_argument(
        "--glosses",
        type=int,
        default=0,
        help="wordnet: repeat only this many glosses (the queries' own ones included; 0: all ~117k), "
        "e.g. 11765 at 1M for the copies per gloss of all glosses at 10M (~85)",
    )
    parser.add_argument("--batch", type=int, default=250_000, help="rows per upsert")
    parser.add_argument(
        "--checkpoint-every", type=int, default=1, help="batches between checkpoints (and one at the end)"
    )
    parser.add_argument("--options", default="{}", help="the hnsw layout's index options (JSON)")
    parser.add_argument("--ivf-options", default="{}", help="the ivf layout's index options (JSON)")
    parser.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--workdir", default=str(OUT / "quantized"))
    parser.add_argument("--keep", action="store_true", help="keep the built indexes and the queries")
    args = parser.parse_args()
    names = ["clustered", "wordnet"] if args.data == "both" else [args.data]
    result: dict[str, Any] = {
        "n": args.n,
        "dim": 384,
        "k": K,
        "queries": args.queries,
        "cpus": os.cpu_count(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_avg_at_start": os.getloadavg()[0],
    }
    for name in names:
        result[name] = run(name, args)
    result["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    result["load_avg_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
