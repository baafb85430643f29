"""The strategy bandit and the learned ranker on simulated users over a real catalog (WordNet nouns).

    python benchmarks/bench_bandit.py --items 5000 --searches 5000

Part 1 (bandit): the same stream of simulated searches (exact-name, attribute, descriptive with
typos, repeated head queries; position-biased clicks) is served by every fixed set of strategies
with an equal share of a 100-candidate budget (31 sets, "uniform" = all five), by LinUCB and by
linear Thompson sampling. Success = a relevant item among the top 10 shown. Writes
``docs/benchmarks/ltr_bandit.png`` and ``benchmarks/out/ltr_bandit.json``.

Part 2 (ranker): sessions logged under a fixed plan (10% with randomised top-10 order), LightGBM
lambdarank trained on the first 70% with naive clicks and with inverse-propensity weights (from the
randomised sessions); nDCG@10 of the top-50 candidates on the held-out 30% against the fused order.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from xmodal.ltr.simreport import bandit_benchmark, build, write_report
from xmodal.ltr.simulate import ranker_experiment

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--searches", type=int, default=5000)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-ranker", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    sim = build(args.items, args.searches, budget=args.budget, seed=args.seed)
    for query in sim.queries:  # the stateless strategies' runs, once per query text
        sim.static_runs(query.text)
    setup_s = time.perf_counter() - start
    bandit = bandit_benchmark(sim)
    for path in write_report(bandit, ROOT / "docs" / "benchmarks", "ltr_bandit"):
        if path.suffix == ".json":  # the figures go to benchmarks/out; docs keeps the plot
            path.unlink()
    (ROOT / "benchmarks" / "out").mkdir(parents=True, exist_ok=True)
    out = {"setup_s": round(setup_s, 1), "bandit": {k: v for k, v in bandit.items() if not k.startswith("_")}}
    if not args.skip_ranker:
        ranker = ranker_experiment(sim, seed=args.seed)
        ranker.pop("models")
        out["ranker"] = ranker
    out["total_s"] = round(time.perf_counter() - start, 1)
    (ROOT / "benchmarks" / "out" / "ltr_bandit.json").write_text(json.dumps(out, indent=2))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
