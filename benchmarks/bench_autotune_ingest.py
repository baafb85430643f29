"""The default mode's self-tuning during a long load of many writes: how often it refits, what the fits cost the
load, and which catalog the model in place at the end was fitted on.

Run:  python benchmarks/bench_autotune_ingest.py [--items 20000] [--batch 100] [--rounds 2] [--encoder hashing]

A fresh index (exact vector index) is filled with WordNet synsets (``serverutil.wordnet``) by ``Engine.add`` calls of
``--batch`` items one after another, as a REST ingest of many requests adds them (no bulk-load hold: that is the
CLI's ``add``), with the background self-tuning on (:mod:`xmodal.ltr.autotune`). After the last write the load
waits for the tuner to settle (a fit due once the writes pause starts then) and records the model in place.
Two cadences, in the same run, alternating per round:

- ``settle``: today's (a due fit waits for the writes to pause, ``SETTLE`` s, unless the catalog has grown
  ``BUSY_GROWTH`` times meanwhile);
- ``every_growth`` (the peer): the cadence before it, a fit whenever the catalog has grown by half (``SETTLE`` = 0).

Per round and cadence: the load's wall time (the writes alone), the fits (catalog size each was fitted on, wall
seconds), the time from the last write until the model of the whole catalog is in place (None: never, without
another write), and the ratios settle ÷ every_growth of the load's wall time and of the fits' total. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["XMODAL_AUTOTUNE"] = "on"  # over any index's or process's setting: what is measured

from serverutil import wordnet  # noqa: E402

from xmodal import Engine, Item  # noqa: E402
from xmodal.ltr import autotune  # noqa: E402
from xmodal.ltr.extension import autotuner, pipeline  # noqa: E402

CADENCES = {"settle": (autotune.SETTLE, autotune.BUSY_GROWTH), "every_growth": (0.0, autotune.GROWTH)}


def run(items: list[Item], batch: int, cadence: str, encoder: str) -> dict[str, Any]:
    autotune.SETTLE, autotune.BUSY_GROWTH = CADENCES[cadence]
    fits: list[dict[str, Any]] = []
    fitted = autotune.tune

    def timed_tune(pipe: Any, **options: Any) -> Any:
        start = time.perf_counter()
        model = fitted(pipe, **options)
        items_seen = None if model is None else int(model.report.get("items", 0))
        fits.append({"items": items_seen, "seconds": round(time.perf_counter() - start, 2)})
        return model

    autotune.tune = timed_tune
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            Engine.open(Path(tmp) / "idx", encoder=encoder, index="exact") as engine,
        ):
            tuner = autotuner(engine)
            assert tuner is not None and tuner.enabled
            start = time.perf_counter()
            for at in range(0, len(items), batch):
                engine.add(items[at : at + batch])
            ended = time.perf_counter()
            tuner.wait()  # the fit running, and the one waiting for the writes to pause
            model = pipeline(engine).tuned
            model_items = None if model is None else int(model.report.get("items", 0))
            return {
                "load_s": round(ended - start, 2),
                "fits": fits,
                "fit_s_total": round(sum(f["seconds"] for f in fits), 2),
                "model_items_at_end": model_items,
                "whole_catalog_model_after_last_write_s": (
                    round(time.perf_counter() - ended, 2) if model_items == len(items) else None
                ),
            }
    finally:
        autotune.tune = fitted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encoder", default="hashing")
    args = parser.parse_args()
    items, _ = wordnet(args.items, 0)
    rounds = []
    for r in range(args.rounds):
        order = list(CADENCES) if r % 2 == 0 else list(reversed(CADENCES))
        result = {c: run(items, args.batch, c, args.encoder) for c in order}
        rounds.append(result)
        print(f"round {r + 1}: " + json.dumps(result), file=sys.stderr)

    def ratio(key: str) -> list[float]:
        return [round(r["settle"][key] / r["every_growth"][key], 3) for r in rounds if r["every_growth"][key]]

    report = {
        "items": args.items,
        "batch": args.batch,
        "encoder": args.encoder,
        "settle_s": CADENCES["settle"][0],
        "busy_growth": CADENCES["settle"][1],
        "rounds": rounds,
        "load_s_ratio_settle_over_every_growth": ratio("load_s"),
        "fit_s_ratio_settle_over_every_growth": ratio("fit_s_total"),
        "fits_median": {c: statistics.median(len(r[c]["fits"]) for r in rounds) for c in CADENCES},
        "load_avg": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
