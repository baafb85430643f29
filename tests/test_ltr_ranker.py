"""The lambdarank ranker, propensities, training sets and nDCG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmodal import StorageError
from xmodal.ltr.ranker import LambdaRanker, estimate_propensities
from xmodal.ltr.training import LoggedList, ndcg_at, training_set

pytest.importorskip("lightgbm")


def _data(n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    X = rng.random((n_queries * 10, 3))
    y = (X[:, 1] > 0.7).astype(int)  # feature 1 decides relevance
    return X, y, [10] * n_queries


def test_lambdarank_learns_and_round_trips_in_text_format(tmp_path: Path) -> None:
    X, y, groups = _data(60, 0)
    ranker = LambdaRanker(n_estimators=30).fit(X, y, groups, feature_names=["a", "b:c", "d"])
    Xt, yt, _ = _data(20, 1)
    scores = ranker.score(Xt)
    assert scores[yt == 1].mean() > scores[yt == 0].mean() + 0.5
    ranker.save(tmp_path / "r.txt")
    assert (tmp_path / "r.txt").read_text().startswith("tree")
    loaded = LambdaRanker.load(tmp_path / "r.txt")
    assert np.allclose(loaded.score(Xt), scores) and loaded.feature_names_ == ["a", "b:c", "d"]


def test_corrupt_or_missing_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="sidecar"):
        LambdaRanker.load(tmp_path / "missing.txt")
    X, y, groups = _data(10, 0)
    LambdaRanker(n_estimators=5).fit(X, y, groups).save(tmp_path / "r.txt")
    (tmp_path / "r.txt").write_text("garbage")
    with pytest.raises(StorageError, match="corrupt"):
        LambdaRanker.load(tmp_path / "r.txt")


def test_propensities_recover_the_examination_curve() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(1, 11, size=200_000)
    clicked = rng.random(len(pos)) < 0.5 / pos  # relevance independent of position (randomised)
    props = estimate_propensities(pos, clicked, 10)
    assert np.allclose(props, 1.0 / np.arange(1, 11), atol=0.02)


def test_training_set_weights_clicks_by_inverse_propensity() -> None:
    lists = [LoggedList(np.ones((3, 2)), [1, 2, 3], [0.0, 1.0, 0.0]), LoggedList(np.ones((2, 2)), [1, 2], [0, 0])]
    X, y, groups, w = training_set(lists, np.array([1.0, 0.5, 0.25]))
    # every (clicked, unclicked) pair is weighted by its clicked item: the list takes the click's weight
    assert groups == [3] and y.tolist() == [0, 1, 0] and w.tolist() == [2.0, 2.0, 2.0]


def test_ipw_weights_are_clipped_and_shared_by_the_unclicked() -> None:
    lists = [LoggedList(np.ones((3, 2)), [1, 2, 3], [1.0, 0.0, 1.0])]
    _, _, _, w = training_set(lists, np.array([1.0, 0.5, 0.01]), max_weight=10.0)
    assert w.tolist() == [1.0, 5.5, 10.0]  # 1/0.01 clipped to 10; the unclicked item gets mean(1, 10)


def test_parametric_propensities_are_steadier_than_raw_rates_on_few_sessions() -> None:
    errors = {True: [], False: []}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        pos = np.tile(np.arange(1, 11), 300)  # 300 randomised top-10 sessions
        clicked = rng.random(len(pos)) < 0.3 / pos**1.5
        for parametric in (True, False):
            props = estimate_propensities(pos, clicked, 10, parametric=parametric)
            errors[parametric].append(np.abs(props - 1.0 / np.arange(1, 11) ** 1.5).mean())
    assert np.mean(errors[True]) < np.mean(errors[False])


def test_ndcg() -> None:
    assert ndcg_at(["a", "b"], {"a"}) == 1.0
    assert ndcg_at(["b", "a"], {"a"}) == pytest.approx(1 / np.log2(3))
    assert ndcg_at(["b"], set()) == 0.0
