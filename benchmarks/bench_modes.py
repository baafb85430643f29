"""Every search mode side by side on the judged sets, per query kind (issue 19's table).

    python benchmarks/bench_modes.py [--sets wordnet debian] [--items 10000] [--per-kind 300] [--tune ITEMS]

For each judged set (:mod:`xmodal.eval.judged`: WordNet + GCIDE, Debian packages; built from the seed,
``docs/judged_sets.md``): build it, index its catalog as a new user would (``Engine.open`` with the
defaults: the offline encoder, all-MiniLM-L6-v2; no feedback, no trained ranker or generative model; the
default mode self-tuned on the catalog's pseudo-queries once it is in, as the autotuner does in the background
of an add, or with ``--tune`` on that many sampled items instead of the autotuner's 1,000),
then run every query in every mode the index can run (``xmodal eval --mode all``: dense, the learned
pipeline's single strategies, uniform, the anchors rrf and rsf, learned) and report, per set and query
kind, nDCG@10, R@10, R@1 and MRR with 95% bootstrap intervals and each mode's paired difference from
the best single strategy. Held-out kinds (only ever evaluated, never tuned on) are marked.

Prints one JSON object (``sets.<name>`` is ``xmodal eval --mode all --json``'s report, plus build and
index times) and writes it with Markdown tables to ``benchmarks/out/modes.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from xmodal import Engine
from xmodal.eval.compare import FUSED_MODES, compare, parse_modes, probe
from xmodal.eval.judged import DEFAULT_ITEMS, DEFAULT_PER_KIND, SETS, build_set
from xmodal.eval.runner import EvalQuery, read_queries
from xmodal.eval.sets import HELD_OUT, set_info_for
from xmodal.ingest.catalog import add_catalogs
from xmodal.ltr.extension import deferred_tuning, pipeline
from xmodal.ltr.selftune import tune
from xmodal.ltr.tuned import describe

OUT = Path(__file__).resolve().parent / "out"
SHORT = {"ndcg@10": "nDCG@10", "recall@10": "R@10", "recall@1": "R@1", "mrr": "MRR"}


def run_set(
    name: str, work: Path, items: int, per_kind: int, seed: int, resamples: int, tune_sample: int | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    built = build_set(name, work / name, items=items, per_kind=per_kind, seed=seed)
    build_s = time.perf_counter() - start
    index = work / f"{name}-index"
    shutil.rmtree(index, ignore_errors=True)
    start = time.perf_counter()
    with Engine.open(index) as engine:
        with deferred_tuning(engine) as tuner:  # the default mode self-tunes once the whole catalog is in
            if tuner is not None and tune_sample is not None:
                tuner.enabled = False  # fitted below, on --tune's sample instead
            added = add_catalogs(engine, [built.catalog])
        if added.rejected:
            raise SystemExit(f"{name}: {len(added.rejected)} items rejected, e.g. {added.rejected[0]}")
        index_s = time.perf_counter() - start
        pipe = pipeline(engine)
        if tune_sample is not None:  # issue 19 part 1: the self-tuned fusion, fitted before any query is run
            pipe.set_tuned(tune(pipe, sample=tune_sample, seed=seed), save=False)
        if tuner is not None:
            tuner.wait()  # the default: the autotuner's fit (none when the catalog is under 1,000 items)
        tuning = describe(pipe.tuned, pipe.dir)
        info = set_info_for(built.query_file)
        entries = list(read_queries(built.query_file, info.kinds if info else None))
        modes, _ = parse_modes("all", engine.modes())
        first = next(e.text for e in entries if isinstance(e, EvalQuery) and e.text)
        modes, unable = probe(engine, modes, first)
        start = time.perf_counter()
        result = compare(engine, entries, modes, set_info=info, resamples=resamples, seed=seed)
        result.skipped_modes = unable
        eval_s = time.perf_counter() - start
        default_mode = engine.default_mode
        encoder = engine.encoder.config()
    report = result.to_dict()
    runs = len(result.kinds) * len(modes)
    return {
        **report,
        "default_mode": default_mode,
        "encoder": encoder,
        "items": built.items,
        "seconds": {"build": round(build_s, 1), "index": round(index_s, 1), "evaluate": round(eval_s, 1)},
        "ms_per_search": round(1000 * eval_s / max(runs, 1), 2),
        "tuning": tuning,
    }


def markdown(results: dict[str, dict[str, Any]], metrics: tuple[str, ...] = ("ndcg@10", "recall@10")) -> str:
    """One table per metric: a row per set × kind, a column per mode, then the default mode's paired
    difference from the best single strategy."""
    out: list[str] = []
    for metric in metrics:
        modes = next(iter(results.values()))["modes"]
        head = ["set", "kind", *modes, "best single", "default − best single [95%]"]
        out += [f"**{SHORT[metric]}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, report in results.items():
            default = report["default_mode"]
            for group in report["kinds"]:
                kind = group["kind"] + (" (held out)" if group["split"] == HELD_OUT else "")
                best = group["best_single"].get(metric, "")
                cells = []
                for mode in modes:
                    value = group["modes"].get(mode, {}).get(metric)
                    text = "–" if value is None else f"{value['mean']:.3f}"
                    cells.append(f"**{text}**" if mode == default else text)
                diff = group["modes"].get(default, {}).get("vs_best_single", {}).get(metric)
                delta = "–" if diff is None else f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
                out.append("| " + " | ".join([name, f"{kind} ({group['queries']})", *cells, best, delta]) + " |")
        out.append("")
    return "\n".join(out)


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per set × kind (all kinds together left out): is the default mode at least the best single strategy
    (the upper end of the difference's interval reaches 0) and is it 5% above it, for nDCG@10 and R@10."""
    cells = []
    for name, report in results.items():
        default = report["default_mode"]
        for group in report["kinds"]:
            if group["split"] is None and len(report["kinds"]) > 1:
                continue  # all kinds together
            row: dict[str, Any] = {"set": name, "kind": group["kind"], "split": group["split"]}
            for metric in ("ndcg@10", "recall@10"):
                best = group["best_single"][metric]
                top = group["modes"][best][metric]["mean"]
                diff = group["modes"][default]["vs_best_single"][metric]
                row[metric] = {
                    "best_single": best,
                    "not_below": diff["high"] >= 0,
                    "five_percent_above": group["modes"][default][metric]["mean"] >= 1.05 * top and top > 0,
                    "difference": diff,
                }
            cells.append(row)
    met = sum(1 for c in cells if c["ndcg@10"]["not_below"] and c["recall@10"]["not_below"])
    above = sum(1 for c in cells if c["ndcg@10"]["five_percent_above"] and c["recall@10"]["five_percent_above"])
    return {"cells": len(cells), "not_below_on_both": met, "five_percent_above_on_both": above, "per_cell": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=sorted(SETS))
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--per-kind", type=int, default=DEFAULT_PER_KIND)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=OUT / "judged", help="where the sets and indexes go")
    parser.add_argument(
        "--tune",
        type=int,
        default=None,
        metavar="ITEMS",
        help="fit the self-tuned fusion on ITEMS sampled items (default: the autotuner's fit, on 1,000)",
    )
    args = parser.parse_args()
    results = {}
    for name in args.sets:
        print(f"{name}: building, indexing, evaluating...", file=sys.stderr)
        results[name] = run_set(name, args.work, args.items, args.per_kind, args.seed, args.resamples, args.tune)
        print(f"{name}: {results[name]['seconds']}", file=sys.stderr)
    data = {
        "command": "python benchmarks/bench_modes.py " + " ".join(sys.argv[1:]),
        "fused_modes": sorted(FUSED_MODES),
        "headline": headline(results),
        "sets": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "modes.json").write_text(json.dumps(data, indent=1) + "\n")
    (OUT / "modes.md").write_text(markdown(results, ("ndcg@10", "recall@10", "recall@1", "mrr")))
    print(json.dumps(data))


if __name__ == "__main__":
    main()
