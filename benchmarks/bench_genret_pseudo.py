"""Generative retrieval trained on the catalog's pseudo-queries, against exact dense search, per query kind.

    PYTHONPATH=src python benchmarks/bench_genret_pseudo.py [--set wordnet] [--items 10000] [--variants self,pseudo]

Builds a judged set (:mod:`xmodal.eval.judged`), indexes its catalog with the defaults, then for each
variant trains the generative index with ``genret train``'s defaults (``self``: the items' own views and
noisy self pairs; ``pseudo``: those plus the pseudo-queries of :mod:`xmodal.ltr.pseudo`) and reports
R@10 of GENIUS and GENIUS-R per query kind as a ratio to dense R@10 on the same embeddings (issue 19,
part 2: targets 0.8× and 0.95× on the held-out kinds). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from xmodal import Engine
from xmodal.eval.compare import compare, parse_modes
from xmodal.eval.judged import build_set
from xmodal.eval.runner import read_queries
from xmodal.eval.sets import set_info_for
from xmodal.genret.build import train_engine
from xmodal.ingest.catalog import add_catalogs

OUT = Path(__file__).resolve().parent / "out" / "genret_pseudo"
MODES = "dense,generative,generative-rerank"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="wordnet")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--variants", default="self,pseudo")
    args = parser.parse_args()
    built = build_set(args.set, OUT / args.set, items=args.items, per_kind=args.per_kind, seed=0)
    index = OUT / f"{args.set}-{args.items}-index"
    if not index.exists():
        with Engine.open(index) as engine:
            add_catalogs(engine, [built.catalog])
    info = set_info_for(built.query_file)
    entries = list(read_queries(built.query_file, info.kinds if info else None))
    report: dict[str, Any] = {"set": args.set, "items": args.items, "variants": {}}
    for variant in args.variants.split(","):
        with Engine.open(index) as engine:
            start = time.perf_counter()
            summary = train_engine(engine, progress=False, feedback=False, pseudo=variant == "pseudo")
            seconds = time.perf_counter() - start
            modes, _ = parse_modes(MODES, engine.modes())
            result = compare(engine, entries, modes, set_info=info, resamples=100, seed=0).to_dict()
        kinds = {}
        for group in result["kinds"]:
            r10 = {mode: group["modes"][mode]["recall@10"]["mean"] for mode in modes}
            dense = max(r10["dense"], 1e-9)
            kinds[group["kind"]] = {
                "split": group["split"],
                "recall@10": {m: round(v, 3) for m, v in r10.items()},
                "genius_vs_dense": round(r10["generative"] / dense, 3),
                "genius_r_vs_dense": round(r10["generative-rerank"] / dense, 3),
            }
        report["variants"][variant] = {"train_s": round(seconds, 1), "sources": summary["sources"], "kinds": kinds}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
