"""``cluster``: group the stored vectors into topics, each named by its most central items and top terms.

k-means (Lloyd 1982, k-means++ seeding; scikit-learn's ``KMeans``) on the unit vectors, with k given or
chosen by the mean silhouette (Rousseeuw 1987, cosine) over a few candidates; or HDBSCAN (Campello,
Moulavi & Sander 2013; ``sklearn.cluster.HDBSCAN``, scikit-learn >= 1.3), which finds the number of
clusters itself and leaves outliers as noise. A cluster's central items are the closest to its mean
direction; its top terms come from c-TF-IDF over its items' text (:mod:`.terms`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MissingDependency, ValidationError
from ..vectormath import normalize
from .data import PRIMARY, TaskData, check_positive, load, text_of
from .terms import ctfidf_top_terms

if TYPE_CHECKING:
    from ..engine import Engine

METHODS = ("kmeans", "hdbscan")
NOISE = -1
MAX_CLUSTERS = 1_000
SILHOUETTE_SAMPLE = 2_000  # items the silhouette of each candidate k is measured on
CANDIDATES = 8  # candidate k values tried when none is given


@dataclass(frozen=True, slots=True)
class Cluster:
    """One group: its members, the items closest to its centre (with their cosine to it) and its top terms."""

    id: int
    members: list[str]
    central: list[tuple[str, str, float]]  # (id, title, cosine to the centre)
    terms: list[tuple[str, float]]

    @property
    def name(self) -> str:
        """A short name: the top terms, or the most central item's title when its items have no text."""
        if self.terms:
            return " ".join(term for term, _ in self.terms[:3])
        return self.central[0][1] or self.central[0][0] if self.central else f"cluster {self.id}"

    def to_dict(self, members: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "size": len(self.members),
            "central": [{"id": i, "title": t, "score": round(s, 6)} for i, t, s in self.central],
            "terms": [{"term": t, "weight": round(w, 6)} for t, w in self.terms],
        }
        if members:
            out["members"] = self.members
        return out


@dataclass(frozen=True, slots=True)
class Clustering:
    """The clusters (largest first), the items left as noise (HDBSCAN) and how k was reached."""

    method: str
    items: int
    clusters: list[Cluster]
    noise: list[str]
    params: dict[str, Any]
    assignment: dict[str, int]  # item id -> cluster id (NOISE for noise)

    def to_dict(self, members: bool = True) -> dict[str, Any]:
        return {
            "method": self.method,
            "items": self.items,
            "params": self.params,
            "clusters": [c.to_dict(members) for c in self.clusters],
            "noise": self.noise if members else len(self.noise),
        }


def cluster(
    engine: Engine,
    *,
    method: str = "kmeans",
    n_clusters: int | None = None,
    min_cluster_size: int = 5,
    kind: str = PRIMARY,
    filters: Mapping[str, Any] | None = None,
    seed: int = 0,
    top_items: int = 3,
    top_terms: int = 5,
) -> Clustering:
    """Cluster the ``kind`` vectors of the items that match ``filters`` (every item without)."""
    if method not in METHODS:
        raise ValidationError("method", f"unknown clustering method {method!r}", f"use one of {', '.join(METHODS)}")
    check_positive("top_items", top_items, "pass top_items=3")
    check_positive("top_terms", top_terms, "pass top_terms=5")
    data = load(engine, kind=kind, filters=filters)
    if len(data) < 3:
        raise ValidationError("index", f"{len(data)} items to cluster", "cluster at least 3 items")
    if method == "kmeans":
        assigned, params = kmeans_labels(data.vectors, n_clusters, seed)
    else:
        if n_clusters is not None:
            raise ValidationError("n_clusters", "HDBSCAN finds the number of clusters itself", "leave n_clusters out")
        assigned, params = hdbscan_labels(data.vectors, min_cluster_size)
    return describe(data, assigned, method, params, top_items, top_terms)


def _sklearn_cluster() -> Any:
    try:
        import sklearn.cluster
    except ImportError as exc:
        raise MissingDependency("scikit-learn", "tasks") from exc
    return sklearn.cluster


def kmeans_labels(vectors: np.ndarray, n_clusters: int | None, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """k-means labels, with k given or chosen by silhouette."""
    n = len(vectors)
    if n_clusters is None:
        return choose_k(vectors, seed)
    check_positive("n_clusters", n_clusters, "pass n_clusters=10, or leave it out to choose by silhouette")
    if not 2 <= n_clusters <= min(n, MAX_CLUSTERS):
        raise ValidationError(
            "n_clusters", f"{n_clusters} clusters of {n} items", f"pass 2 to {min(n, MAX_CLUSTERS)} (or leave it out)"
        )
    return _kmeans(vectors, n_clusters, seed), {"n_clusters": n_clusters, "chosen_by": "caller", "seed": seed}


def _kmeans(vectors: np.ndarray, k: int, seed: int, n_init: int = 4) -> np.ndarray:
    model = _sklearn_cluster().KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    labels: np.ndarray = model.fit_predict(vectors).astype(np.int64)
    return labels


def choose_k(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The k-means labels of the candidate k with the best mean cosine silhouette (on a seeded sample)."""
    _sklearn_cluster()  # the documented error when scikit-learn is missing
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    top = max(2, min(n - 1, MAX_CLUSTERS, int(2 * np.sqrt(n)) + 1))
    candidates = sorted({int(round(x)) for x in np.geomspace(2, top, CANDIDATES)})
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False)
    best: tuple[float, int] | None = None
    scores: dict[str, float] = {}
    for k in candidates:
        labels = _kmeans(vectors, k, seed, n_init=1)  # one start per candidate; the chosen k gets four
        if len(set(labels[sample].tolist())) < 2:
            continue
        score = float(silhouette_score(vectors[sample], labels[sample], metric="cosine"))
        scores[str(k)] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, k)
    if best is None:  # every vector alike: one group is all there is
        return np.zeros(n, dtype=np.int64), {"n_clusters": 1, "chosen_by": "silhouette", "silhouette": scores}
    params = {"n_clusters": best[1], "chosen_by": "silhouette", "silhouette": scores, "seed": seed}
    return _kmeans(vectors, best[1], seed), params


def hdbscan_labels(vectors: np.ndarray, min_cluster_size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """HDBSCAN labels (NOISE for outliers) on the unit vectors (Euclidean distance: a monotone map of cosine)."""
    check_positive("min_cluster_size", min_cluster_size, "pass min_cluster_size=5")
    if min_cluster_size < 2:
        raise ValidationError("min_cluster_size", "must be at least 2", "pass min_cluster_size=5")
    module = _sklearn_cluster()
    if not hasattr(module, "HDBSCAN"):
        raise MissingDependency("scikit-learn>=1.3 (for HDBSCAN)", "tasks")
    model = module.HDBSCAN(min_cluster_size=min_cluster_size, copy=True)
    labels: np.ndarray = model.fit_predict(vectors.astype(np.float64)).astype(np.int64)
    found = len(set(labels.tolist()) - {NOISE})
    return labels, {"min_cluster_size": min_cluster_size, "n_clusters": found, "chosen_by": "hdbscan"}


def describe(
    data: TaskData, assigned: np.ndarray, method: str, params: dict[str, Any], top_items: int, top_terms: int
) -> Clustering:
    """Clusters from labels: members, central items, top terms; renumbered largest first."""
    found = [c for c in sorted(set(assigned.tolist())) if c != NOISE]
    found.sort(key=lambda c: (-int(np.sum(assigned == c)), c))
    groups = [np.flatnonzero(assigned == c) for c in found]
    terms = ctfidf_top_terms([[text_of(data.items[i]) for i in g] for g in groups], top_terms)
    clusters = []
    for new_id, (members, top) in enumerate(zip(groups, terms, strict=True)):
        centre = normalize(data.vectors[members].mean(axis=0, keepdims=True))[0]
        sims = data.vectors[members] @ centre
        order = np.argsort(-sims, kind="stable")[:top_items]
        central = [(data.items[members[j]].id, data.items[members[j]].title, float(sims[j])) for j in order]
        clusters.append(Cluster(new_id, [data.items[i].id for i in members], central, top))
    renumber = {old: new for new, old in enumerate(found)}
    assignment = {item.id: renumber.get(int(c), NOISE) for item, c in zip(data.items, assigned, strict=True)}
    noise = [data.items[i].id for i in np.flatnonzero(assigned == NOISE)]
    return Clustering(method, len(data), clusters, noise, params, assignment)
