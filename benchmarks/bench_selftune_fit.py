"""How long self-tuning (:func:`xmodal.ltr.selftune.tune`) takes on a WordNet catalog, and where the time goes.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_selftune_fit.py --items 100000 --sample 300

Catalog: the WordNet synsets of ``bench_ltr_latency.py`` (Debian ``wordnet-base``; one item per synset,
title = first lemma, text = gloss, attributes = lexicographer category and part of speech), hashing
encoder, exact index: the same catalog, encoder and sample as ``bench_ltr_latency.py --tuned SAMPLE``.
It times one fit with ``--sample`` items (what ``xmodal ltr tune --sample`` fits) and prints JSON: the
fit's seconds, what it reported (queries, configurations, accepted, held-out figures), and with
``--profile`` the functions with the most cumulative time.

``--index PATH`` keeps the built catalog at ``PATH`` (built there when missing) and fits on a fresh copy of
it each run, so the fit of two versions of the code can be timed on the same catalog without building it
again (about 140 s at 100k items). The target (issue 19) is a fit of at most 120 s at 100k items on the
shared 2-core machine.

``--during`` also times searches while the fit runs in the background (:class:`xmodal.ltr.autotune.AutoTuner`,
what ``add`` starts): how many default-mode searches were answered meanwhile and their p50/p95.

``--sql-peer`` first times the same fit with the lexical and structured strategies' BM25F in SQL, one query at a
time (what the fit did before :mod:`xmodal.store.bm25_matrix`, and what it still does where the rows' terms are
not held), on another fresh copy of the catalog, so the two are compared in the same run (same load).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ltr_latency import wordnet_items  # noqa: E402  (the same catalog)

from xmodal import Engine, Query  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.ltr.autotune import AutoTuner  # noqa: E402
from xmodal.ltr.pipeline import Pipeline  # noqa: E402
from xmodal.ltr.selftune import tune  # noqa: E402
from xmodal.ltr.strategies import lexical  # noqa: E402


def open_catalog(items: int, keep: Path | None) -> tuple[Engine, float]:
    """An engine over the first ``items`` WordNet synsets, and the seconds spent building it (0 when reused)."""
    work = Path(tempfile.mkdtemp()) / "idx"
    build_s = 0.0
    if keep is None or not keep.exists():
        t0 = time.perf_counter()
        engine = Engine.open(keep or work, encoder=HashingEncoder(), index="exact")
        engine.add(wordnet_items(items))
        build_s = time.perf_counter() - t0
        if keep is None:
            return engine, build_s
        engine.close()
    assert keep is not None
    shutil.copytree(keep, work)
    return Engine.open(work, encoder=HashingEncoder()), build_s


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # the engine's own background fit would race the one timed here
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--index", type=Path, default=None, help="keep the built catalog here and fit on a copy")
    ap.add_argument("--profile", action="store_true", help="profile the fit (cProfile; slower)")
    ap.add_argument("--during", action="store_true", help="time searches while a background fit runs")
    ap.add_argument("--sql-peer", action="store_true", help="also time the fit with BM25F in SQL, in the same run")
    args = ap.parse_args()
    peer: dict[str, object] | None = None
    if args.sql_peer:
        engine, _ = open_catalog(args.items, args.index)
        with mock.patch.object(lexical, "matrix_of", lambda index: None):  # every BM25F in SQL, query by query
            peer = fit(engine, args.sample, None)
        engine.close()
    engine, build_s = open_catalog(args.items, args.index)
    pipe = Pipeline(engine)
    profiler = cProfile.Profile() if args.profile else None
    out: dict[str, object] = {"items": len(engine), "sample": args.sample, "build_s": round(build_s, 1)}
    out.update(fit(engine, args.sample, profiler, pipe))
    if peer is not None:
        out["sql_peer"] = {k: peer[k] for k in ("fit_s", "anchor", "penalty", "margin", "validation")}
        out["speedup_vs_sql_peer"] = round(float(peer["fit_s"]) / float(out["fit_s"]), 2)  # type: ignore[arg-type]
        out["same_model_as_sql_peer"] = all(peer[k] == out[k] for k in ("anchor", "penalty", "margin", "validation"))
    if args.during:
        out["during_fit"] = searches_during_fit(pipe)
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        out["profile"] = text.getvalue().splitlines()
    json.dump(out, sys.stdout, indent=2)
    print()
    engine.close()


def fit(
    engine: Engine, sample: int, profiler: cProfile.Profile | None, pipe: Pipeline | None = None
) -> dict[str, object]:
    """One fit of ``sample`` items and what it reported."""
    pipe = pipe or Pipeline(engine)
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    model = tune(pipe, sample=sample, seed=0)
    if profiler is not None:
        profiler.disable()
    fit_s = time.perf_counter() - t0
    if model is None:
        raise SystemExit(f"--sample {sample}: too few pseudo-queries to fit the self-tuned fusion on")
    report = model.report
    return {
        "fit_s": round(fit_s, 1),
        "target_fit_s": 120.0,
        "queries": report.get("queries"),
        "configurations": len(model.configs),
        "accepted": model.accepted,
        "anchor": report.get("anchor"),
        "penalty": report.get("penalty"),
        "margin": report.get("margin"),
        "validation": report.get("validation"),
    }


def searches_during_fit(pipe: Pipeline) -> dict[str, object]:
    """Learned searches answered while an :class:`AutoTuner` fit (what a write starts) runs in the background."""
    engine = pipe.engine
    pipe.set_tuned(None, save=False)  # a catalog never fitted: the tuner's first fit is due
    tuner = AutoTuner(pipe)
    titles = [stored.item.title for stored, _ in zip(engine.iter_items(), range(500), strict=False)]
    queries = [Query(text=t, k=10) for t in titles]
    vectors = engine.encode_queries(queries)
    t0 = time.perf_counter()
    if not tuner.consider():
        raise SystemExit("--during: the autotuner did not start a fit")
    took: list[float] = []
    while tuner.running:
        i = len(took) % len(queries)
        a = time.perf_counter()
        pipe.search(queries[i], vectors[i])
        took.append(time.perf_counter() - a)
    tuner.wait()
    wall_s = time.perf_counter() - t0
    arr = np.asarray(took) * 1000
    return {
        "fit_wall_s": round(wall_s, 1),
        "fitted": pipe.tuned is not None,
        "searches": len(took),
        "search_p50_ms": round(float(np.percentile(arr, 50)), 1) if len(arr) else None,
        "search_p95_ms": round(float(np.percentile(arr, 95)), 1) if len(arr) else None,
        "error": tuner.last_error,
    }


if __name__ == "__main__":
    main()
