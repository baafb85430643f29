"""LinUCB's success in the bandit simulation, seed by seed, for whatever tree is on ``PYTHONPATH``.

    PYTHONPATH=src python benchmarks/bench_bandit_seeds.py 0 1 2 ... 41 > seeds.jsonl

The same calls as ``bench_bandit.py --quick --policies linucb`` (5,000 WordNet items, 5,000 searches, budget
100) without the uniform baseline, using only what every tree since the bound's reference (3f30d17, before
``--quick`` existed) has, so the reference and a change run on the same seeds (docs/benchmarks/ltr.md, round 9).
One JSON line per seed: overall success and success per query kind. The simulation is seeded: load changes
no figure.

``--crn`` draws the simulated users' examinations and clicks with common random numbers: the t-th search of a
seed's stream from its own generator, seeded (seed, t), instead of from one stream of draws. Without it a click is
drawn only for an examined position, so one list that differs shifts every later draw, and two trees' runs of a
seed are paired only up to their first different list (docs/benchmarks/ltr.md, round 9).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable, Sequence

import numpy as np

from xmodal.ltr import simulate
from xmodal.ltr.context import CONTEXT_FEATURES
from xmodal.ltr.policy import make_policy
from xmodal.ltr.simreport import build
from xmodal.ltr.simulate import ARMS, QUERY_KINDS


def common_clicks(seed: int) -> Callable[..., list[bool]]:
    """:func:`xmodal.ltr.simulate.clicks` with common random numbers: search t of the stream draws every position's
    examination and click from the generator seeded (seed, t), whatever was shown before it."""
    searches = itertools.count()

    def clicks(
        shown: Sequence[str],
        relevant: frozenset[str],
        rng: np.random.Generator,
        *,
        eta: float = 1.0,
        p_click: float = 0.9,
        p_noise: float = 0.02,
    ) -> list[bool]:
        look, act = np.random.default_rng([seed, next(searches)]).random((2, len(shown)))
        return [
            bool(look[p] < 1.0 / (p + 1) ** eta and act[p] < (p_click if item in relevant else p_noise))
            for p, item in enumerate(shown)
        ]

    return clicks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--crn", action="store_true", help="common random numbers for the users' clicks")
    args = parser.parse_args()
    for seed in args.seeds:
        start = time.perf_counter()
        if args.crn:
            simulate.clicks = common_clicks(seed)  # type: ignore[assignment]  # Simulator.run looks it up per search
        sim = build(5000, 5000, budget=100, seed=seed)
        for query in sim.queries:
            sim.static_runs(query.text)
        kinds = np.array([q.kind for q in sim.queries])
        policy = make_policy("linucb", list(ARMS), len(CONTEXT_FEATURES), budget=sim.budget, seed=sim.seed)
        success = sim.run(policy)["success"]
        per_kind = {k: round(float(success[kinds == k].mean()), 4) for k in QUERY_KINDS}
        line = {"seed": seed, "linucb": float(success.mean()), "per_kind": per_kind, "crn": args.crn}
        print(json.dumps(line | {"s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
