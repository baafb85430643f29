"""Batch search against single searches, in the same run: 100 queries in one ``Engine.search_many`` call vs
100 ``Engine.search`` calls, per search mode, and 100 vectors in one ``search_by_vectors`` vs 100
``search_by_vector`` calls.

Run:  python benchmarks/bench_batch.py [--n 5000] [--queries 100] [--rounds 5] [--modes dense,learned]

Data: WordNet (Debian ``wordnet-base``): ``n`` synsets as items (title: the lemma, text: the gloss, an
attribute ``pos``), encoded by the default ``offline`` encoder (all-MiniLM-L6-v2) in an index with the default
settings; the queries are the lemma names of other synsets (short real queries), encoded at search time.
Each round times both ways back to back (the order alternating); the figure is the median over rounds of
batch time ÷ single-search time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import wordnet_entries  # noqa: E402

from xmodal import Engine, Item, Query  # noqa: E402

POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


def build(folder: Path, n: int, n_queries: int) -> tuple[Engine, list[str]]:
    """An index of ``n`` WordNet synsets and ``n_queries`` query texts from other synsets."""
    entries = wordnet_entries()
    order = np.random.default_rng(5).permutation(len(entries))
    docs, held_out = order[:n], order[n : n + 4 * n_queries]
    items = [
        Item.create(f"s{i}", title=entries[i][0], text=entries[i][1], attributes={"pos": ("a", "b", "c")[i % 3]})
        for i in docs.tolist()
    ]
    engine = Engine.open(folder / "idx")
    start = time.perf_counter()
    engine.add(items)
    print(f"indexed {n} items in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    texts = list(dict.fromkeys(entries[i][0] for i in held_out.tolist()))[:n_queries]
    return engine, texts


def paired(single: Callable[[], Any], batch: Callable[[], Any], rounds: int) -> dict[str, float]:
    """Median seconds of each way over ``rounds`` (order alternating), and the median per-round ratio."""
    singles, batches, ratios = [], [], []
    for r in range(rounds):
        timed = {}
        for name, fn in (
            (("single", single), ("batch", batch)) if r % 2 == 0 else (("batch", batch), ("single", single))
        ):
            t0 = time.perf_counter()
            fn()
            timed[name] = time.perf_counter() - t0
        singles.append(timed["single"])
        batches.append(timed["batch"])
        ratios.append(timed["batch"] / timed["single"])
    return {
        "single_s": round(statistics.median(singles), 4),
        "batch_s": round(statistics.median(batches), 4),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(x, 3) for x in ratios],
    }


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--modes", default="dense,learned,uniform,lexical", help="comma-separated search modes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine, texts = build(Path(tmp), args.n, args.queries)
        with engine:
            modes = args.modes.split(",")
            out: dict[str, Any] = {
                "n": args.n,
                "queries": len(texts),
                "k": args.k,
                "default_mode": engine.default_mode,
                "target": 0.3,
                "modes": {},
            }
            for mode in modes:
                queries = [Query(text=t, k=args.k, mode=mode) for t in texts]
                engine.search_many(queries[:5])  # warm: models loaded, caches filled
                for q in queries[:5]:
                    engine.search(q)
                out["modes"][mode] = paired(
                    lambda queries=queries: [engine.search(q) for q in queries],
                    lambda queries=queries: engine.search_many(queries),
                    args.rounds,
                )
                print(f"{mode}: {out['modes'][mode]}", file=sys.stderr)
            vectors = engine.encode_queries([Query(text=t) for t in texts])
            out["vectors"] = paired(
                lambda: [engine.search_by_vector(v, k=args.k) for v in vectors],
                lambda: engine.search_by_vectors(vectors, k=args.k),
                args.rounds,
            )
            filtered = [Query(text=t, k=args.k, mode="dense", filters={"pos": "a"}) for t in texts]
            out["dense_filtered"] = paired(
                lambda: [engine.search(q) for q in filtered], lambda: engine.search_many(filtered), args.rounds
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
