"""The bandit benchmark over the simulation: every fixed strategy set, uniform, LinUCB and Thompson.

Reports success rates (a relevant item among the top ``k`` shown), per query kind, cumulative
reward curves and the regret against the per-kind best fixed set chosen in hindsight, and writes
them as JSON and a PNG plot.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import HashingEncoder
from ..engine import Engine
from ..errors import MissingDependency
from .context import CONTEXT_FEATURES
from .extension import autotuner
from .pipeline import LTRConfig, Pipeline
from .policy import make_policy
from .simulate import ARMS, QUERY_KINDS, QueryGenerator, Simulator, wordnet_catalog


def build(n_items: int, n_searches: int, *, budget: int = 100, seed: int = 0, folder: Path | None = None) -> Simulator:
    """A hashing-encoder index of WordNet nouns with its pipeline, and a stream of simulated queries."""
    items = wordnet_catalog(n_items, seed=seed)
    root = Path(folder or tempfile.mkdtemp(prefix="xmodal-sim-"))
    engine = Engine.open(root / "idx", encoder=HashingEncoder(), index="exact")
    tuner = autotuner(engine)
    if tuner is not None:  # the bandit learns from its untuned start, as in every round measured (ltr.md)
        tuner.enabled = False
    engine.add(items)
    pipeline = Pipeline(engine, LTRConfig(budget=budget, seed=seed))
    generator = QueryGenerator(items, seed=seed + 1)
    return Simulator(pipeline, [generator.sample() for _ in range(n_searches)], budget=budget, seed=seed)


def regret_exponent(cumulative: np.ndarray) -> float:
    """Slope of log(cumulative regret) against log(t) over the last 90% of steps (< 1: sublinear)."""
    t = np.arange(1, len(cumulative) + 1)
    keep = (t >= len(t) // 10) & (cumulative > 0)
    if keep.sum() < 2:
        return 0.0
    return float(np.polyfit(np.log(t[keep]), np.log(cumulative[keep]), 1)[0])


def bandit_benchmark(sim: Simulator, *, policies: tuple[str, ...] = ("linucb", "thompson")) -> dict[str, Any]:
    """Run every fixed set of arms, uniform (all arms) and the bandits on the same query stream."""
    kinds = np.array([q.kind for q in sim.queries])
    curves: dict[str, np.ndarray] = {}
    fixed: dict[str, float] = {}
    per_kind: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for size in range(1, len(ARMS) + 1):
        for arms in itertools.combinations(ARMS, size):
            name = "+".join(arms)
            success = sim.run(arms)["success"]
            curves[name], fixed[name] = success, float(success.mean())
            per_kind[name] = {k: float(success[kinds == k].mean()) for k in QUERY_KINDS if (kinds == k).any()}
    uniform = "+".join(ARMS)
    chosen: dict[str, dict[str, int]] = {}
    for kind in policies:
        policy = make_policy(kind, list(ARMS), len(CONTEXT_FEATURES), budget=sim.budget, seed=sim.seed)
        result = sim.run(policy)
        curves[kind] = result["success"]
        chosen[kind] = result["chosen"]
        per_kind[kind] = {k: float(result["success"][kinds == k].mean()) for k in QUERY_KINDS if (kinds == k).any()}
    best = max(fixed, key=lambda n: fixed[n])
    oracle_rate = {k: max(per_kind[n][k] for n in fixed) for k in per_kind[best]}
    oracle = np.array([oracle_rate[k] for k in kinds])
    out: dict[str, Any] = {
        "searches": len(sim.queries),
        "items": len(sim.pipeline.engine),
        "budget": sim.budget,
        "k": sim.k,
        "query_kinds": {k: int((kinds == k).sum()) for k in QUERY_KINDS},
        "best_fixed_set": best,
        "best_fixed_success": fixed[best],
        "uniform_success": fixed[uniform],
        "single_strategy_success": {a: fixed[a] for a in ARMS},
        "per_kind": per_kind,
        "plans_chosen": chosen,
        "bandits": {},
        "seconds": round(time.perf_counter() - start, 1),
    }
    for kind in policies:
        success = curves[kind]
        regret = np.cumsum(oracle - success)
        out["bandits"][kind] = {
            "success": float(success.mean()),
            "success_last_half": float(success[len(success) // 2 :].mean()),
            "vs_best_fixed": float(success.mean() - fixed[best]),
            "relative_to_uniform": float(success.mean() / fixed[uniform] - 1),
            "cumulative_regret": float(regret[-1]),
            "regret_exponent": regret_exponent(np.maximum(regret, 0)),
        }
    out["_curves"] = {
        "best_fixed": curves[best],
        "uniform": curves[uniform],
        **{k: curves[k] for k in policies},
        "oracle": oracle,
    }
    return out


def write_report(result: dict[str, Any], out_dir: Path, name: str = "ltr_bandit") -> list[Path]:
    """JSON (without the raw curves) and a PNG of cumulative reward and regret."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependency(exc.name or "matplotlib", "eval") from exc

    out_dir.mkdir(parents=True, exist_ok=True)
    curves = result["_curves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    t = np.arange(1, len(curves["oracle"]) + 1)
    for label, values in curves.items():
        ax1.plot(t, np.cumsum(values), label=label)
        if label not in ("oracle",):
            ax2.plot(t, np.cumsum(curves["oracle"] - values), label=label)
    ax1.set(title="cumulative successes (relevant item in top 10)", xlabel="searches")
    ax2.set(title="cumulative regret vs per-kind best fixed set", xlabel="searches")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    data = {k: v for k, v in result.items() if not k.startswith("_")}
    js = out_dir / f"{name}.json"
    js.write_text(json.dumps(data, indent=2))
    return [png, js]
