"""Ranking metrics against hand-computed cases and, for nDCG, against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmodal.eval.metrics import (
    dcg_at_k,
    mean,
    mean_reciprocal_rank,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    score_ranking,
)

RANKING = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "x"}  # x is never retrieved


def test_recall_hand_computed() -> None:
    assert recall_at_k(RANKING, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKING, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, RELEVANT, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, RELEVANT, 100) == pytest.approx(2 / 3)
    assert recall_at_k(RANKING, {"a"}, 1) == 1.0


def test_reciprocal_rank_and_mrr() -> None:
    assert reciprocal_rank(RANKING, RELEVANT) == 0.5
    assert reciprocal_rank(RANKING, {"e"}) == 0.2
    assert reciprocal_rank(RANKING, {"e"}, k=4) == 0.0  # outside the cut-off
    assert reciprocal_rank(RANKING, {"zz"}) == 0.0
    pairs = [(RANKING, {"a"}), (RANKING, {"c"}), (RANKING, {"zz"})]
    assert mean_reciprocal_rank(pairs) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_ndcg_hand_computed() -> None:
    # DCG@5 = 1/log2(3) + 1/log2(5); the ideal puts the 3 relevant ids first: 1 + 1/log2(3) + 1/log2(4)
    assert dcg_at_k(RANKING, RELEVANT, 5) == pytest.approx(1.0616063116448506)
    assert ndcg_at_k(RANKING, RELEVANT, 5) == pytest.approx(0.49818925746641285)
    # at k=2 the ideal has only 2 places: 1 + 1/log2(3)
    assert ndcg_at_k(RANKING, RELEVANT, 2) == pytest.approx(0.38685280723454163)
    assert ndcg_at_k(["b", "d", "x"], RELEVANT, 10) == 1.0
    assert ndcg_at_k(RANKING, {"a"}, 10) == 1.0


def test_edge_cases() -> None:
    assert recall_at_k(RANKING, set(), 5) == 0.0
    assert ndcg_at_k(RANKING, set(), 5) == 0.0
    assert ndcg_at_k([], {"a"}, 5) == 0.0
    assert mean([]) == 0.0
    # a repeated id counts once, at its first position
    assert recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == 0.5
    assert ndcg_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    with pytest.raises(ValueError):
        recall_at_k(RANKING, RELEVANT, 0)


def test_inputs_not_mutated() -> None:
    ranking, relevant = list(RANKING), set(RELEVANT)
    score_ranking(ranking, relevant)
    assert ranking == RANKING and relevant == RELEVANT


def test_score_ranking_names() -> None:
    scores = score_ranking(RANKING, {"a"})
    assert scores == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0, "ndcg@10": 1.0}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 30),
    k=st.integers(1, 12),
    data=st.data(),
)
def test_ndcg_matches_sklearn(n: int, k: int, data: st.DataObject) -> None:
    from sklearn.metrics import ndcg_score

    ids = [f"i{j}" for j in range(n)]
    order = data.draw(st.permutations(ids))
    relevant = set(data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=n, unique=True)))
    # sklearn: y_true per candidate, scores decreasing along our ranking
    y_true = np.array([[1.0 if i in relevant else 0.0 for i in order]])
    y_score = np.array([np.arange(n, 0, -1, dtype=float)])
    expected = ndcg_score(y_true, y_score, k=k)
    assert ndcg_at_k(order, relevant, k) == pytest.approx(expected, abs=1e-9)
    value = recall_at_k(order, relevant, k)
    assert 0.0 <= value <= 1.0


@settings(max_examples=80, deadline=None)
@given(
    ranking=st.lists(st.sampled_from("abcdefghij"), max_size=15),
    relevant=st.sets(st.sampled_from("abcdefghijxyz"), max_size=6),
)
def test_metric_invariants(ranking: list[str], relevant: set[str]) -> None:
    recalls = [recall_at_k(ranking, relevant, k) for k in range(1, 17)]
    assert recalls == sorted(recalls)  # recall never drops as k grows
    assert all(0.0 <= v <= 1.0 for v in recalls)
    for k in (1, 5, 10):
        assert 0.0 <= ndcg_at_k(ranking, relevant, k) <= 1.0 + 1e-12
        # a hit within the top k gives a positive nDCG@k and reciprocal rank ≥ 1/k, and vice versa
        hit = any(item in relevant for item in ranking[:k])
        assert (ndcg_at_k(ranking, relevant, k) > 0) == hit
        assert (reciprocal_rank(ranking, relevant, k) >= 1 / k) == hit
