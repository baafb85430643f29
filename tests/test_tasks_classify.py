"""``classify`` and ``evaluate``: the kNN vote (by hand on tiny vectors, and on an index), its confidences,
cross-validation, and every bad input with the field it names."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tasks_data import topic_items
from xmodal import Engine, Item, Query, ValidationError
from xmodal.tasks import KnnVote, classify, evaluate
from xmodal.tasks.metrics import f1_per_class, macro_f1, stratified_folds


def unit(*rows: list[float]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_vote_shares_and_distance_weighting() -> None:
    # two "a" neighbours far off, one "b" neighbour almost on the query
    vectors = unit([1, 0.02], [0.6, 0.8], [0.6, -0.8])
    labels = ["b", "a", "a"]
    query = unit([1, 0])
    uniform = KnnVote(k=3, weighting="uniform").fit(vectors, labels)
    assert uniform.predict(query).tolist() == ["a"]
    assert uniform.predict_proba(query)[0].tolist() == pytest.approx([2 / 3, 1 / 3])
    weighted = KnnVote(k=3, weighting="distance").fit(vectors, labels)
    assert weighted.predict(query).tolist() == ["b"]
    proba = weighted.predict_proba(query)[0]
    assert proba.sum() == pytest.approx(1.0) and proba[1] > 0.9


def test_k_larger_than_the_labelled_set_uses_them_all() -> None:
    model = KnnVote(k=50, weighting="uniform").fit(unit([1, 0], [0, 1]), ["x", "y"])
    assert model.predict_proba(unit([1, 0.1]))[0].tolist() == pytest.approx([0.5, 0.5])


def test_macro_f1_and_folds() -> None:
    truth = ["a", "a", "a", "b", "c", "c"]
    predicted = ["a", "a", "b", "b", "c", "a"]
    assert f1_per_class(truth, predicted) == pytest.approx({"a": 2 * 2 / (2 * 2 + 1 + 1), "b": 2 / 3, "c": 2 / 3})
    assert macro_f1(truth, predicted) == pytest.approx(np.mean([2 / 3, 2 / 3, 2 / 3]))
    labels = ["x"] * 10 + ["y"] * 5
    folds = stratified_folds(labels, 5, seed=3)
    for fold in range(5):
        members = [labels[i] for i in np.flatnonzero(folds == fold)]
        assert members.count("x") == 2 and members.count("y") == 1
    assert (stratified_folds(labels, 5, seed=3) == folds).all()


def test_classify_queries_items_and_unlabelled(engine: Engine) -> None:
    items = topic_items(per_topic=12)
    unlabelled = [
        Item.create("new-space", text="rocket launch to the moon and a comet"),
        Item.create("new-food", text="garlic butter bread from the oven"),
    ]
    engine.add(items + unlabelled)
    result = classify(engine, "topic", queries=["the telescope sees a galaxy", Query(text="coach and referee")])
    assert [p.label for p in result.predictions] == ["space", "sport"]
    assert [p.target for p in result.predictions] == ["query:0", "query:1"]
    assert result.labels == {"food": 12, "space": 12, "sport": 12} and result.labelled == 36
    default = classify(engine, "topic", k=5, neighbours=2)  # every item without a label
    assert {p.target: p.label for p in default.predictions} == {"new-space": "space", "new-food": "food"}
    first = default.predictions[0]
    assert sum(first.scores.values()) <= 1.0 + 1e-9 and first.confidence == max(first.scores.values())
    assert len(first.neighbours) == 2 and all(lab == first.label for _, lab, _ in first.neighbours)
    by_id = classify(engine, "topic", ids=["food3"], top=1)
    assert by_id.predictions[0].label == "food" and len(by_id.predictions[0].scores) == 1
    assert classify(engine, "topic", filters={"topic": ["food", "space"]}).labels == {"food": 12, "space": 12}


def test_evaluate_cross_validates(engine: Engine) -> None:
    engine.add(topic_items(per_topic=15) + [Item.create("odd", text="a lone item", attributes={"topic": "rare"})])
    report = evaluate(engine, "topic", k=5, folds=5, seed=1)
    assert report.items == 45 and report.dropped == {"rare": 1}
    assert report.macro_f1 >= 0.9 and report.accuracy >= 0.9
    assert set(report.f1) == {"sport", "food", "space"}
    again = evaluate(engine, "topic", k=5, folds=5, seed=1)
    assert again.to_dict() == report.to_dict()


def test_bad_input_names_the_field(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="index"):
        classify(engine, "topic", queries=["x"])  # empty index
    engine.add(topic_items(per_topic=3) + [Item.create("plain", text="no label here", attributes={"shape": "round"})])
    cases = [
        ({"label": "colour"}, "label", "seen: shape, topic"),
        ({"label": "topic", "k": 0}, "k", "at least 1"),
        ({"label": "topic", "weighting": "cubic"}, "weighting", "uniform, distance"),
        ({"label": "topic", "kind": "audio"}, "kind", "primary"),
        ({"label": "topic", "ids": ["nope"]}, "ids", "nope"),
        ({"label": "topic", "queries": []}, "queries", "at least one"),
        ({"label": "topic", "filters": {"topic": "food"}}, "label", "two labels"),
    ]
    for kwargs, field, words in cases:
        with pytest.raises(ValidationError) as info:
            classify(engine, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field and words in str(info.value), (kwargs, str(info.value))
    with pytest.raises(ValidationError, match="too few labelled items") as info:
        evaluate(engine, "topic", folds=5)  # 3 per label
    assert info.value.field == "label"
    with pytest.raises(ValidationError) as info:
        evaluate(engine, "topic", folds=1)
    assert info.value.field == "folds"
