"""Fusion: RRF and convex combination are pure, order-invariant and keep per-strategy provenance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmodal import Hits, ValidationError
from xmodal.ltr.fusion import (
    COMPLETED_FLOOR,
    FUSERS,
    committed_weights,
    convex,
    fuse,
    min_max,
    nqc,
    rrf,
    to_hits,
    z_score,
)


def test_rrf_matches_the_formula() -> None:
    runs = {"a": Hits.of(["x", "y"], [3.0, 1.0], "a"), "b": Hits.of(["y", "z"], [0.9, 0.5], "b")}
    fused = rrf(runs, {"a": 2.0}, k=10)
    scores = {h.id: h.score for h in fused}
    assert scores["x"] == pytest.approx(2 / 11)
    assert scores["y"] == pytest.approx(2 / 12 + 1 / 11)
    assert scores["z"] == pytest.approx(1 / 12)
    assert [h.id for h in fused] == ["y", "x", "z"]
    assert dict(fused[0].sources) == {"a": (2, 1.0), "b": (1, pytest.approx(0.9))}


def test_convex_normalisers() -> None:
    assert min_max(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert min_max(np.array([5.0, 5.0])).tolist() == [1.0, 1.0]
    z = z_score(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    runs = {"a": Hits.of(["x", "y"], [10.0, 0.0], "a"), "b": Hits.of(["y"], [0.3], "b")}
    fused = convex(runs, {"a": 1.0, "b": 2.0})
    assert {h.id: h.score for h in fused} == {"x": 1.0, "y": 2.0}


def test_nqc_is_the_scale_free_spread_of_the_top_scores() -> None:
    assert nqc(np.array([0.5] * 12)) == 0.0  # flat: no signal
    assert nqc(np.array([])) == 0.0
    peaked = np.array([9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert nqc(peaked) == pytest.approx(peaked.std() / peaked.mean())
    assert nqc(peaked * 7.5) == pytest.approx(nqc(peaked))  # BM25F and cosine runs compare
    assert nqc(np.array([6.0])) == pytest.approx(np.array([6.0] + [0.0] * 9).std() / 0.6)  # one match of many


def test_committed_weights_let_the_run_with_signal_lead() -> None:
    sharp = Hits.of([f"s{i}" for i in range(10)], [9.0] + [1.0] * 9, "lex")
    flat = Hits.of([f"f{i}" for i in range(10)], [0.50, 0.50, 0.49, 0.49, 0.49, 0.48, 0.48, 0.48, 0.48, 0.48], "dense")
    weights = committed_weights({"lex": sharp, "dense": flat}, {"lex": 1.0, "dense": 0.5})
    assert weights["lex"] == 1.0 and 0 < weights["dense"] < 0.01
    # the sharp run's clear winner leads; with equal weights the flat run's first two (min-max 1) came first
    runs = {"lex": sharp, "dense": flat}
    assert convex(runs, committed_weights(runs))[0].id == "s0"
    assert [h.id for h in convex(runs)[:3]] == ["f0", "f1", "s0"]
    # no run with any signal (flat or empty): the planned weights as they are
    level = Hits.of([f"l{i}" for i in range(10)], [0.4] * 10, "b")
    assert committed_weights({"a": level, "b": Hits.empty()}, {"a": 2.0}) == {"a": 2.0, "b": 1.0}
    # a catalog of 3 items: too few scores to predict from, the weights as planned
    few = {"a": Hits.of(["x", "y", "z"], [0.9, 0.5, 0.4], "a"), "b": Hits.of(["y", "x"], [0.8, 0.1], "b")}
    assert committed_weights(few, {"b": 0.5}) == {"a": 1.0, "b": 0.5}
    assert nqc(np.array([1.0]), 0) == 0.0
    # cosines around 0 (an image query against text vectors): no commitment to compare, the weights as planned
    ids = [f"i{n}" for n in range(10)]
    noise = {"img": Hits.of(ids, [1.0] + [-0.02] * 9, "img"), "txt": Hits.of(ids[::-1], [0.06] + [-0.04] * 9, "txt")}
    assert committed_weights(noise, {"img": 1.0}) == {"img": 1.0, "txt": 1.0}


def test_a_dense_hit_that_matches_the_query_words_gets_their_credit_when_completed() -> None:
    # lexical: x and y share the query's words, z fewer; dense (half weight): a and b are close to the query,
    # c is not. b holds some of the query's words (BM25F 3.9, just below the lexical run's last hit), a none.
    lexical = Hits.of(["x", "y", "z"], [10.0, 7.0, 4.0], "lexical")
    dense = Hits.of(["a", "b", "c"], [0.90, 0.88, 0.30], "dense")
    runs, weights = {"lexical": lexical, "dense": dense}, {"lexical": 1.0, "dense": 0.5}
    completed = {"lexical": {"a": 0.0, "b": 3.9, "c": 0.0}}
    plain = {h.id: h.score for h in convex(runs, weights)}
    filled = {h.id: h.score for h in convex(runs, weights, completed=completed)}
    # without completion b counts as matching none of the words: below a and below the lexical hit y
    assert plain["b"] < plain["a"] and plain["b"] < plain["y"]
    # completed: b scores its BM25F on the lexical run's scale (from COMPLETED_FLOOR x its last hit)
    lo = COMPLETED_FLOOR * 4.0
    assert filled["b"] == pytest.approx(0.5 * (0.88 - 0.30) / 0.60 + (3.9 - lo) / (10.0 - lo))
    assert filled["a"] == pytest.approx(0.5) and filled["c"] == 0.0  # no query term: nothing, as before
    assert filled["z"] == pytest.approx((4.0 - lo) / (10.0 - lo)) and lo > 0  # the last lexical hit: credit
    assert filled["b"] > filled["a"] and filled["b"] > filled["y"]
    # provenance stays what the runs returned: completion adds evidence, not sources
    assert {h.id: set(h.sources) for h in convex(runs, weights, completed=completed)}["b"] == {"dense"}
    # a completed score above the run's best is clipped to 1; one of an item no run returned is ignored
    over = {h.id: h.score for h in convex(runs, completed={"lexical": {"a": 99.0, "q": 5.0}})}
    assert over["a"] == pytest.approx(2.0) and "q" not in over
    # rank fusion has no score to complete: the same list with or without
    assert fuse("rrf", runs, None, completed) == fuse("rrf", runs)
    # z-score: the run's and the completed scores standardised together
    z = {h.id: h.score for h in fuse("convex-zscore", runs, None, completed)}  # x: in the lexical run only
    assert z["x"] == pytest.approx(float(z_score(np.array([10.0, 7.0, 4.0, 0.0, 3.9, 0.0]))[0]))


def test_views_of_one_family_count_once_by_an_items_best_view() -> None:
    # the dense search of three vector kinds: "pic" has an image (in all three runs), "word" a text vector only
    text = Hits.of(["word", "pic", "other"], [0.9, 0.8, 0.1], "dense:text")
    image = Hits.of(["pic", "other"], [0.6, 0.2], "dense:image")
    combined = Hits.of(["pic", "other"], [0.7, 0.3], "dense:combined")
    lexical = Hits.of(["pic", "word", "other"], [5.0, 5.0, 1.0], "lexical")
    runs = {"dense:text": text, "dense:image": image, "dense:combined": combined, "lexical": lexical}
    families = {"dense:text": "dense", "dense:image": "dense", "dense:combined": "dense"}
    summed = {h.id: h.score for h in convex(runs)}
    assert summed["pic"] > summed["word"]  # summed, three views outvote one just by being three runs
    best = {h.id: h.score for h in convex(runs, families=families)}
    # by its best view: word is first in dense:text (1.0), pic first in image and combined (1.0): a tie plus lexical
    assert best["word"] == pytest.approx(1.0 + 1.0) and best["pic"] == pytest.approx(1.0 + 1.0)
    assert best["other"] == pytest.approx(0.0)
    weighted = {h.id: h.score for h in convex(runs, {"dense:image": 0.2, "dense:combined": 0.4}, families=families)}
    # weights apply before the best is taken: pic's best weighted view is dense:text (6/8 of the way up)
    assert weighted["pic"] == pytest.approx(1.0 + 0.7 / 0.8) and weighted["word"] == pytest.approx(2.0)
    # rank fusion ignores families; a family of one run is that run
    assert fuse("rrf", runs, None, None, families) == fuse("rrf", runs)
    alone = {"dense:text": text, "lexical": lexical}
    assert convex(alone, families={"dense:text": "dense"}) == convex(alone)


def test_unknown_fusion_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="rrf"):
        fuse("borda", {})


def test_to_hits_keeps_contributing_strategies() -> None:
    runs = {"lexical": Hits.of(["x"], [1.0], "lexical"), "memory": Hits.of(["y", "x"], [1.0, 0.5], "memory")}
    hits = to_hits(rrf(runs), 2)
    assert hits.ids.tolist() == ["x", "y"] and hits.provenance == ("lexical+memory", "memory")


run_ids = st.lists(st.sampled_from([f"i{n}" for n in range(12)]), min_size=0, max_size=8, unique=True)


@settings(max_examples=60, deadline=None)
@given(
    runs=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), run_ids, min_size=1, max_size=4),
    method=st.sampled_from(sorted(FUSERS)),
    seed=st.integers(0, 1000),
)
def test_fusion_is_invariant_to_the_order_of_runs_and_pure(runs: dict[str, list[str]], method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hits = {name: Hits.of(ids, sorted(rng.random(len(ids)).tolist(), reverse=True), name) for name, ids in runs.items()}
    snapshot = {n: (h.ids.copy(), h.scores.copy()) for n, h in hits.items()}
    weights = {name: float(rng.uniform(0.5, 2)) for name in runs}
    forward = fuse(method, hits, weights)
    backward = fuse(method, dict(reversed(list(hits.items()))), dict(reversed(list(weights.items()))))
    assert [(h.id, round(h.score, 9), dict(h.sources)) for h in forward] == [
        (h.id, round(h.score, 9), dict(h.sources)) for h in backward
    ]
    assert {h.id for h in forward} == {i for ids in runs.values() for i in ids}
    for name, (ids, scores) in snapshot.items():  # inputs never mutated
        assert hits[name].ids.tolist() == ids.tolist() and np.array_equal(hits[name].scores, scores)
    for h in forward:
        for name, (rank, _) in h.sources.items():
            assert runs[name][rank - 1] == h.id
