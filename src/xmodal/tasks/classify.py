"""``classify``: label items by the votes of their labelled neighbours, and measure it by cross-validation.

The labels are any attribute the caller names (``category``): every item with a scalar value for it is a
labelled example; the items to classify are new queries (text, image), stored items by id, or by default
every stored item without a label. Each prediction carries a confidence per label (its share of the
weighted votes), so a caller can refuse a low-confidence one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ValidationError
from ..records import Query
from .data import PRIMARY, TaskData, check_positive, label_of, labelled, load, positions
from .knn import KnnVote, check_weighting
from .metrics import f1_per_class, macro_f1, stratified_folds

if TYPE_CHECKING:
    from ..engine import Engine

MAX_FOLDS = 20


@dataclass(frozen=True, slots=True)
class Prediction:
    """One classified item or query: the winning label, its confidence, and the top labels' confidences."""

    target: str  # the item id, or "query:N" for the N-th query
    label: str
    confidence: float
    scores: dict[str, float]
    neighbours: list[tuple[str, str, float]] = field(default_factory=list)  # (id, label, cosine), best first

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "neighbours": [{"id": i, "label": lab, "score": round(s, 6)} for i, lab, s in self.neighbours],
        }


@dataclass(frozen=True, slots=True)
class Classification:
    """The predictions and how they were made."""

    label_attribute: str
    k: int
    weighting: str
    labelled: int
    labels: dict[str, int]  # examples per label
    predictions: list[Prediction]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label_attribute,
            "k": self.k,
            "weighting": self.weighting,
            "labelled": self.labelled,
            "labels": self.labels,
            "predictions": [p.to_dict() for p in self.predictions],
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Cross-validated scores of the kNN vote on the labelled items."""

    label_attribute: str
    k: int
    weighting: str
    folds: int
    seed: int
    items: int
    macro_f1: float
    accuracy: float
    f1: dict[str, float]  # per label
    dropped: dict[str, int]  # labels with fewer items than folds, left out of the evaluation

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label_attribute,
            "k": self.k,
            "weighting": self.weighting,
            "folds": self.folds,
            "seed": self.seed,
            "items": self.items,
            "labels": len(self.f1),
            "macro_f1": round(self.macro_f1, 6),
            "accuracy": round(self.accuracy, 6),
            "f1": {k: round(v, 6) for k, v in self.f1.items()},
            "dropped": self.dropped,
        }


def _examples(data: TaskData, attribute: str) -> tuple[np.ndarray, list[str]]:
    where, labels = labelled(data, attribute)
    if len(set(labels)) < 2:
        raise ValidationError(
            "label",
            f"{len(labels)} items are labelled by {attribute!r}, all {labels[0]!r}: a vote needs two labels or more",
            "label items of at least two classes",
        )
    return where, labels


def classify(
    engine: Engine,
    label: str,
    *,
    ids: Sequence[str] | None = None,
    queries: Sequence[Query | str] | None = None,
    k: int = 10,
    weighting: str = "distance",
    kind: str = PRIMARY,
    filters: Mapping[str, Any] | None = None,
    top: int = 3,
    neighbours: int = 0,
) -> Classification:
    """Classify ``queries`` (encoded like search queries), the stored items ``ids``, or (neither given) every
    item without a ``label`` value, by the weighted vote of the ``k`` most similar labelled items (those that
    match ``filters``, compared by their ``kind`` vectors). ``top``: labels listed per prediction;
    ``neighbours``: voters listed per prediction."""
    check_positive("k", k, "pass k=10 for example")
    check_positive("top", top, "pass top=3 for example")
    check_weighting(weighting)
    data = load(engine, kind=kind, filters=filters)
    where, labels = _examples(data, label)
    model = KnnVote(k, weighting).fit(data.vectors[where], labels)
    targets, vectors = _targets(engine, data, label, ids, queries)
    predictions = _predict(model, data, where, targets, vectors, top, neighbours)
    counts = dict(sorted(Counter(labels).items()))
    return Classification(label, k, weighting, len(labels), counts, predictions)


def _targets(
    engine: Engine, data: TaskData, label: str, ids: Sequence[str] | None, queries: Sequence[Query | str] | None
) -> tuple[list[str], np.ndarray]:
    """The names and vectors of what to classify."""
    if ids is not None and queries is not None:
        raise ValidationError("ids", "give ids or queries, not both", "classify stored items or new queries")
    if queries is not None:
        if not queries:
            raise ValidationError("queries", "no query given", "give at least one text or image query")
        parsed = [q if isinstance(q, Query) else Query(text=q) for q in queries]
        return [f"query:{i}" for i in range(len(parsed))], engine.encode_queries(parsed)
    if ids is not None:
        if not ids:
            raise ValidationError("ids", "no id given", "give at least one item id")
        at = positions(data, ids)
        return list(ids), data.vectors[at]
    unlabelled = [i for i, item in enumerate(data.items) if label_of(item, label) is None]
    return [data.items[i].id for i in unlabelled], data.vectors[unlabelled]


def _predict(
    model: KnnVote,
    data: TaskData,
    where: np.ndarray,
    targets: list[str],
    vectors: np.ndarray,
    top: int,
    neighbours: int,
) -> list[Prediction]:
    if not targets:
        return []
    proba = model.predict_proba(vectors)
    classes = model.classes_.tolist()
    near_idx, near_sims = model.kneighbors(vectors) if neighbours else (None, None)
    out = []
    for row, target in enumerate(targets):
        order = np.argsort(-proba[row], kind="stable")[:top]
        scores = {classes[j]: float(proba[row, j]) for j in order}
        voters: list[tuple[str, str, float]] = []
        if near_idx is not None and near_sims is not None:
            for j, sim in zip(near_idx[row][:neighbours], near_sims[row][:neighbours], strict=True):
                voters.append((data.items[int(where[j])].id, classes[model.codes_[j]], float(sim)))
        best = classes[int(order[0])]
        out.append(Prediction(target, best, scores[best], scores, voters))
    return out


def evaluate(
    engine: Engine,
    label: str,
    *,
    k: int = 10,
    weighting: str = "distance",
    folds: int = 5,
    seed: int = 0,
    kind: str = PRIMARY,
    filters: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Stratified ``folds``-fold cross-validation of the kNN vote on the items labelled by ``label``: each fold
    classified by the others. Labels with fewer items than ``folds`` are left out (and listed)."""
    check_positive("k", k, "pass k=10 for example")
    check_weighting(weighting)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise ValidationError("folds", f"must be from 2 to {MAX_FOLDS}, got {folds!r}", "pass folds=5")
    data = load(engine, kind=kind, filters=filters)
    where, labels = labelled(data, label)
    counts = Counter(labels)
    dropped = {lab: n for lab, n in sorted(counts.items()) if n < folds}
    keep = [i for i, lab in enumerate(labels) if lab not in dropped]
    if len({labels[i] for i in keep}) < 2:
        raise ValidationError(
            "label",
            f"too few labelled items for {folds}-fold cross-validation: {dict(counts)}",
            f"label at least {folds} items in each of two classes or more, or pass fewer folds",
        )
    vectors = data.vectors[where[keep]]
    truth = [labels[i] for i in keep]
    predicted = cross_predict(vectors, truth, k=k, weighting=weighting, folds=folds, seed=seed)
    accuracy = float(np.mean(np.asarray(truth) == np.asarray(predicted)))
    per_class = f1_per_class(truth, predicted)
    return Evaluation(
        label, k, weighting, folds, seed, len(truth), macro_f1(truth, predicted), accuracy, per_class, dropped
    )


def cross_predict(
    vectors: np.ndarray, labels: Sequence[str], *, k: int, weighting: str, folds: int, seed: int
) -> list[str]:
    """Each item's label as predicted by a :class:`KnnVote` fitted on the other folds."""
    fold_of = stratified_folds(labels, folds, seed)
    labels_arr = np.asarray(labels)
    predicted = np.empty(len(labels_arr), dtype=object)
    for fold in range(folds):
        test = fold_of == fold
        model = KnnVote(k, weighting).fit(vectors[~test], labels_arr[~test].tolist())
        predicted[test] = model.predict(vectors[test])
    return [str(p) for p in predicted]
