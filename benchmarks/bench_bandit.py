"""The strategy bandit and the learned ranker on simulated users over a real catalog (WordNet nouns).

    python benchmarks/bench_bandit.py --items 5000 --searches 5000 --seeds 0 1 2 --eta 1 2

Part 1 (bandit): the same stream of simulated searches (exact-name, attribute, descriptive with
typos, repeated head queries; position-biased clicks) is served by every fixed set of strategies
with an equal share of a 100-candidate budget (31 sets, "uniform" = all five), by LinUCB and by
linear Thompson sampling. Success = a relevant item among the top 10 shown. Writes
``docs/benchmarks/ltr_bandit.png`` and ``benchmarks/out/ltr_bandit.json``.

Part 2 (ranker): sessions logged under a fixed plan (10% with randomised top-10 order), LightGBM
lambdarank trained on the first 70% with naive clicks and with inverse-propensity weights (from the
randomised sessions); nDCG@10 of the top-50 candidates on the held-out 30% against the fused order,
for each position-bias strength ``--eta`` (users examine position p with 1/p**eta) and each
``--promote-fresh`` boost of the logging order (> 0: items are shown by fused rank + boost × freshness,
so the logged position follows a feature unrelated to relevance; 0: the fused order).
Each seed draws its own catalog sample and query stream; the summary averages over seeds.
Prints one JSON object. On a small machine, run groups of seeds in parallel processes (each with its
own ``--out``) and join them with ``--merge a.json b.json --out all.json``, which writes the summary
over all their seeds.

``--quick`` runs only uniform and the bandits (``--policies``) on each seed's stream, with nothing but the
simulator's long-standing API (``build``, ``make_policy``, ``Simulator.run``), so the same script measures an
older checkout too (``PYTHONPATH=<old tree>/src``): the before/after of a change in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.ltr.context import CONTEXT_FEATURES
from xmodal.ltr.policy import make_policy
from xmodal.ltr.simreport import bandit_benchmark, build, write_report
from xmodal.ltr.simulate import ARMS, QUERY_KINDS, ranker_experiment

ROOT = Path(__file__).resolve().parent.parent


def one_seed(args: argparse.Namespace, seed: int, plot: bool) -> dict[str, Any]:
    start = time.perf_counter()
    sim = build(args.items, args.searches, budget=args.budget, seed=seed)
    for query in sim.queries:  # the stateless strategies' runs, once per query text
        sim.static_runs(query.text)
    out: dict[str, Any] = {"seed": seed, "setup_s": round(time.perf_counter() - start, 1)}
    if not args.skip_bandit:
        bandit = bandit_benchmark(sim)
        if plot:
            for path in write_report(bandit, ROOT / "docs" / "benchmarks", "ltr_bandit"):
                if path.suffix == ".json":  # the figures go to benchmarks/out; docs keeps the plot
                    path.unlink()
        out["bandit"] = {k: v for k, v in bandit.items() if not k.startswith("_")}
    if not args.skip_ranker:
        out["ranker"] = {}
        for eta in args.eta:
            for boost in args.promote_fresh:
                sim.eta = eta
                ranker = ranker_experiment(sim, seed=seed, promote_fresh=boost)
                ranker.pop("models")
                out["ranker"][f"eta={eta:g}" + (f" fresh={boost:g}" if boost else "")] = ranker
    out["total_s"] = round(time.perf_counter() - start, 1)
    return out


def quick_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Uniform and the bandits only: success overall and per query kind, and how often each arm was planned."""
    start = time.perf_counter()
    sim = build(args.items, args.searches, budget=args.budget, seed=seed)
    for query in sim.queries:
        sim.static_runs(query.text)
    kinds = np.array([q.kind for q in sim.queries])
    out: dict[str, Any] = {"seed": seed, "setup_s": round(time.perf_counter() - start, 1), "quick": {}}
    runs: dict[str, Any] = {"uniform": ARMS}
    for kind in args.policies:
        runs[kind] = make_policy(kind, list(ARMS), len(CONTEXT_FEATURES), budget=sim.budget, seed=sim.seed)
    for name, policy in runs.items():
        result = sim.run(policy)
        success = result["success"]
        out["quick"][name] = {
            "success": float(success.mean()),
            "per_kind": {k: float(success[kinds == k].mean()) for k in QUERY_KINDS if (kinds == k).any()},
            "plans_with": result["chosen"],
        }
    out["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out), file=sys.stderr, flush=True)  # a long run's progress, one seed a line
    return out


def quick_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds of each policy's success, overall and per query kind."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    for name in runs[0]["quick"]:
        rows = [r["quick"][name] for r in runs]
        out[name] = {"success": float(np.mean([r["success"] for r in rows]))}
        out[name] |= {k: float(np.mean([r["per_kind"][k] for r in rows])) for k in rows[0]["per_kind"]}
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds of the headline figures."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    bandits = [r["bandit"] for r in runs if "bandit" in r]
    if bandits:
        out["best_fixed_success"] = float(np.mean([b["best_fixed_success"] for b in bandits]))
        out["uniform_success"] = float(np.mean([b["uniform_success"] for b in bandits]))
        for kind in bandits[0]["bandits"]:
            rows = [b["bandits"][kind] for b in bandits]
            out[kind] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            out[kind]["beats_best_fixed_in_seeds"] = sum(r["vs_best_fixed"] >= 0 for r in rows)
            for k in ("vs_best_fixed", "relative_to_uniform"):  # seed-to-seed spread of the headline gains
                out[kind][f"{k}_se"] = (
                    float(np.std([r[k] for r in rows], ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else 0.0
                )
            rates = [float(np.mean([b["bandits"][kind]["success"] for b in bandits])), out["uniform_success"]]
            out[kind]["ratio_of_mean_rates_to_uniform"] = rates[0] / rates[1] - 1
    if "ranker" in runs[0]:
        for eta in runs[0]["ranker"]:
            gains = [r["ranker"][eta]["ndcg@10"] for r in runs]
            out[f"ranker {eta}"] = {k: float(np.mean([g[k] for g in gains])) for k in gains[0]} | {
                "ipw_beats_naive_in_seeds": sum(g["ipw"] > g["naive"] for g in gains)
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--searches", type=int, default=5000)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--eta", type=float, nargs="+", default=[1.0], help="position-bias strengths for the ranker part")
    ap.add_argument(
        "--promote-fresh",
        type=float,
        nargs="+",
        default=[0.0],
        help="freshness boosts of the logging order for the ranker part (0: the fused order)",
    )
    ap.add_argument("--quick", action="store_true", help="uniform and the bandits only (no fixed sets, no ranker)")
    ap.add_argument("--policies", nargs="+", default=["linucb"], help="the bandits of --quick")
    ap.add_argument("--skip-bandit", action="store_true")
    ap.add_argument("--skip-ranker", action="store_true")
    ap.add_argument("--no-plot", action="store_true", help="leave docs/benchmarks/ltr_bandit.png as it is")
    ap.add_argument("--out", default="ltr_bandit.json")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="join the runs of earlier outputs (in benchmarks/out)")
    args = ap.parse_args()
    if args.merge:
        runs = [
            run for name in args.merge for run in json.loads((ROOT / "benchmarks" / "out" / name).read_text())["runs"]
        ]
    elif args.quick:
        runs = [quick_seed(args, seed) for seed in args.seeds]
    else:
        runs = [
            one_seed(args, seed, plot=i == 0 and not (args.skip_bandit or args.no_plot))
            for i, seed in enumerate(args.seeds)
        ]
    out = {"runs": runs, "summary": quick_summary(runs) if "quick" in runs[0] else summary(runs)}
    (ROOT / "benchmarks" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "out" / args.out).write_text(json.dumps(out, indent=2))
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
