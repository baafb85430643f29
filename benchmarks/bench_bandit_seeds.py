"""LinUCB's success in the bandit simulation, seed by seed, for whatever tree is on ``PYTHONPATH``.

    PYTHONPATH=src python benchmarks/bench_bandit_seeds.py 0 1 2 ... 41 > seeds.jsonl

The same calls as ``bench_bandit.py --quick --policies linucb`` (5,000 WordNet items, 5,000 searches, budget
100) without the uniform baseline, using only what every tree since the bound's reference (3f30d17, before
``--quick`` existed) has, so the reference and a change run on the same seeds (docs/benchmarks/ltr.md, round 9).
One JSON line per seed: overall success and success per query kind. The simulation is seeded: load changes
no figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from xmodal.ltr.context import CONTEXT_FEATURES
from xmodal.ltr.policy import make_policy
from xmodal.ltr.simreport import build
from xmodal.ltr.simulate import ARMS, QUERY_KINDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seeds", nargs="+", type=int)
    args = parser.parse_args()
    for seed in args.seeds:
        start = time.perf_counter()
        sim = build(5000, 5000, budget=100, seed=seed)
        for query in sim.queries:
            sim.static_runs(query.text)
        kinds = np.array([q.kind for q in sim.queries])
        policy = make_policy("linucb", list(ARMS), len(CONTEXT_FEATURES), budget=sim.budget, seed=sim.seed)
        success = sim.run(policy)["success"]
        per_kind = {k: round(float(success[kinds == k].mean()), 4) for k in QUERY_KINDS}
        line = {"seed": seed, "linucb": float(success.mean()), "per_kind": per_kind}
        print(json.dumps(line | {"s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
