"""The simulation harness on a small WordNet catalog: queries, clicks, policies and the ranker experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Query
from xmodal.ltr.context import CONTEXT_FEATURES
from xmodal.ltr.features import freshness
from xmodal.ltr.fusion import FusedHit, fuse
from xmodal.ltr.policy import make_policy
from xmodal.ltr.simreport import bandit_benchmark, build, regret_exponent, write_report
from xmodal.ltr.simulate import ARMS, WORDNET, Simulator, clicks, ranker_experiment, wordnet_catalog

pytestmark = pytest.mark.skipif(not WORDNET.exists(), reason="Debian wordnet-base is not installed")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulator:
    return build(500, 160, budget=40, seed=0, folder=tmp_path_factory.mktemp("sim"))


def test_catalog_and_queries_are_real_and_seeded(sim: Simulator) -> None:
    items = wordnet_catalog(500)
    assert len(items) == 500 and items[0].id == wordnet_catalog(500)[0].id
    assert {"category", "kind"} <= set(items[0].attributes)
    kinds = {q.kind for q in sim.queries}
    assert kinds == {"name", "attribute", "descriptive", "head"}
    assert all(q.relevant for q in sim.queries)


def test_position_biased_clicks() -> None:
    rng = np.random.default_rng(0)
    shown = [f"i{n}" for n in range(10)]
    top = sum(clicks(shown, frozenset({"i0"}), rng)[0] for _ in range(2000)) / 2000
    low = sum(clicks(shown, frozenset({"i9"}), rng)[9] for _ in range(2000)) / 2000
    assert top > 0.8 and low < 0.15


def test_exact_name_queries_favour_lexical_and_attribute_queries_structured(sim: Simulator) -> None:
    kinds = np.array([q.kind for q in sim.queries])
    lexical = sim.run(("lexical",))["success"]
    structured = sim.run(("structured",))["success"]
    assert lexical[kinds == "name"].mean() > 0.9
    assert structured[kinds == "attribute"].mean() > 0.9
    assert structured[kinds == "name"].mean() < lexical[kinds == "name"].mean()


def test_bandit_benchmark_report(sim: Simulator, tmp_path: Path) -> None:
    small = Simulator(sim.pipeline, sim.queries[:60], budget=40)
    result = bandit_benchmark(small, policies=("linucb",))
    assert result["searches"] == 60 and len(result["single_strategy_success"]) == len(ARMS)
    assert 0.0 <= result["bandits"]["linucb"]["success"] <= 1.0
    files = write_report(result, tmp_path)
    assert files[0].read_bytes()[:4] == b"\x89PNG" and "best_fixed_set" in files[1].read_text()


def test_regret_exponent() -> None:
    t = np.arange(1, 1001, dtype=float)
    assert regret_exponent(np.sqrt(t)) == pytest.approx(0.5, abs=0.02)
    assert regret_exponent(t) == pytest.approx(1.0, abs=0.02)


def test_ranker_experiment_runs_and_reports(sim: Simulator) -> None:
    pytest.importorskip("lightgbm")
    result = ranker_experiment(sim, randomize=0.3)
    assert set(result["ndcg@10"]) == {"fused", "naive", "ipw"}
    assert result["propensities"][0] == 1.0 and result["randomized_sessions"] > 0


def test_a_freshness_boosted_logger_shows_fresher_items_first(sim: Simulator) -> None:
    query = Query(text=sim.queries[0].text, k=10)
    fused = fuse("rrf", sim.static_runs(query.text)[0], {})
    boosted = sim.logged_order(fused, 2.0, sim.now)
    assert sorted(h.id for h in boosted) == sorted(h.id for h in fused)  # a re-ordering, nothing lost

    def mean_freshness(hits: list[FusedHit]) -> float:
        rows = [sim.pipeline.engine.row_of(h.id) for h in hits[:10]]
        meta = sim.pipeline.item_meta(rows)
        return float(np.mean([freshness(meta[r][0], sim.now) for r in rows]))

    assert mean_freshness(boosted) > mean_freshness(fused) + 0.1
    assert sim.logged_order(fused, 0.0, sim.now) == fused


def test_a_simulated_bandit_is_the_pipelines_policy_while_it_runs(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what reads the deployment's policy (the self-tuned fusion's handover: Pipeline.tuned_active) must see the
    # simulated one's observations, not those of the pipeline's own policy, which the simulation never trains
    pipe, own = sim.pipeline, sim.pipeline.policy
    bandit = make_policy("linucb", list(ARMS), len(CONTEXT_FEATURES), budget=40, seed=0)
    seen: list[object] = []
    arrange = pipe.arrange

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(pipe.policy)
        return arrange(*args, **kwargs)

    monkeypatch.setattr(pipe, "arrange", spy)
    Simulator(pipe, sim.queries[:5], budget=40).run(bandit)
    assert len(seen) == 5 and all(p is bandit for p in seen) and pipe.policy is own
    assert float(bandit.counts_.sum()) > 0 and float(own.counts_.sum()) == 0
    Simulator(pipe, sim.queries[:2], budget=40).run(("lexical",))  # a fixed set of arms: the pipeline's own
    assert seen[-1] is own
