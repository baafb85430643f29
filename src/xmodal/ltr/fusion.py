"""Fusion of several ranked runs into one, as small pure functions chosen by name.

- Reciprocal rank fusion: G. V. Cormack, C. L. A. Clarke and S. Büttcher, "Reciprocal Rank Fusion
  outperforms Condorcet and individual Rank Learning Methods" (SIGIR 2009): ``Σ_s w_s / (k + rank)``.
- Convex combination of normalised scores (CombSUM with weights; E. A. Fox and J. A. Shaw,
  "Combination of Multiple Searches", TREC-2 1994), with min-max or z-score normalisation.
- Query-dependent weights (:func:`committed_weights`): each run's weight scaled by a query-performance
  prediction of that run, its normalised query commitment (NQC: A. Shtok, O. Kurland, D. Carmel, F. Raiber
  and G. Markovits, "Predicting Query Performance by Query-Drift Estimation", ACM TOIS 2012), relative to
  the most committed run's, so a run whose top scores stand out counts fully and a flat one (no signal)
  hardly at all: the fused list falls back to the best run's order.

Inputs are never mutated. Each fused hit keeps which strategies produced it and at what rank, and
ties are broken by item id, so the result does not depend on the order the runs are given in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..provenance import Provenance
from ..records import Hits

Normaliser = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class FusedHit:
    """One fused candidate: its fused score and, per strategy, (1-based rank, raw score); ``ranker``: the
    learned ranker's raw score when one re-ordered it."""

    id: str
    score: float
    sources: Mapping[str, tuple[int, float]]
    ranker: float | None = None


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant run maps to 1."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    lo, hi = float(scores.min()), float(scores.max())
    return np.ones_like(scores) if hi - lo < 1e-12 else (scores - lo) / (hi - lo)


def z_score(scores: np.ndarray) -> np.ndarray:
    """Centre and scale to unit variance; a constant run maps to 0."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    std = float(scores.std())
    return np.zeros_like(scores) if std < 1e-12 else (scores - scores.mean()) / std


NORMALISERS: dict[str, Normaliser] = {"minmax": min_max, "zscore": z_score}


#: a run as plain lists: its name, its items (each at its first occurrence, in rank order), their raw scores, and
#: their 1-based ranks (None when no item occurs twice: 1, 2, ...)
RunLists = tuple[str, list[str], list[float], list[int] | None]


def _run_lists(runs: Mapping[str, Hits]) -> list[RunLists]:
    """Each run (by name) as plain lists: its items at their first occurrence, in rank order, their scores, and
    their 1-based ranks (None when the run holds no item twice: the ranks are 1, 2, ...)."""
    out: list[RunLists] = []
    for name in sorted(runs):
        hits = runs[name]
        ids: list[str] = hits.ids.tolist()
        scores: list[float] = hits.scores.tolist()
        if len(set(ids)) == len(ids):
            out.append((name, ids, scores, None))
            continue
        seen: dict[str, None] = {}
        firsts, values, ranks = [], [], []
        for rank, (item_id, score) in enumerate(zip(ids, scores, strict=True), start=1):
            if item_id not in seen:  # a run's first occurrence of an item counts
                seen[item_id] = None
                firsts.append(item_id)
                values.append(score)
                ranks.append(rank)
        out.append((name, firsts, values, ranks))
    return out


def _sources(lists: list[RunLists]) -> dict[str, dict[str, tuple[int, float]]]:
    """Per item, per run that returned it (in name order: :func:`_run_lists`'s), its rank and raw score."""
    out: dict[str, dict[str, tuple[int, float]]] = {}
    for name, ids, scores, ranks in lists:
        for rank, item_id, score in zip(ranks or range(1, len(ids) + 1), ids, scores, strict=True):
            found = out.get(item_id)
            if found is None:
                out[item_id] = {name: (rank, score)}
            else:
                found[name] = (rank, score)
    return out


def _ranked(totals: dict[str, float], sources: dict[str, dict[str, tuple[int, float]]]) -> list[FusedHit]:
    """The fused hits, best first (ties by id); each keeps its sources (already in name order, built for it)."""
    order = sorted((-round(total, 12), item_id) for item_id, total in totals.items())
    return [FusedHit(i, totals[i], sources[i]) for _, i in order]


RRF_K = 60.0  # Cormack et al.'s constant


def rrf(runs: Mapping[str, Hits], weights: Mapping[str, float] | None = None, k: float = RRF_K) -> list[FusedHit]:
    """Reciprocal rank fusion (Cormack et al. 2009) with per-strategy weights (default 1)."""
    if k < 0:
        raise ValidationError("k", f"must be >= 0, got {k}", "use e.g. k=60")
    sources = _sources(_run_lists(runs))
    totals = {
        item: sum((weights or {}).get(name, 1.0) / (k + rank) for name, (rank, _) in by.items())
        for item, by in sources.items()
    }
    return _ranked(totals, sources)


#: Per run name, the raw scores of fused candidates that run did not return, as its strategy scores them
#: (score completion, :mod:`.completion`; :func:`convex`'s ``completed``).
Completed = Mapping[str, Mapping[str, float]]

#: Under min-max, a completed run (its strategy scores any item, 0 meaning no evidence: BM25F) is scaled from
#: this share of its last hit's score up to its best, instead of from its last hit: the last hit keeps some
#: credit (it matched, an item with no query term did not) and a candidate of another run scores on the same
#: scale, between 0 and its real score's place (chosen on the tuning query kinds, docs/benchmarks.md).
COMPLETED_FLOOR = 0.5


def convex(
    runs: Mapping[str, Hits],
    weights: Mapping[str, float] | None = None,
    normaliser: str = "minmax",
    completed: Completed | None = None,
    families: Mapping[str, str] | None = None,
) -> list[FusedHit]:
    """Weighted sum of per-run normalised scores. A candidate a run did not return contributes nothing from
    that run, unless ``completed`` holds that run (score completion): its strategy's real scores of the other
    runs' candidates are normalised with the run's own (min-max: from :data:`COMPLETED_FLOOR` × its last
    score to its best, clipped to [0, 1]; z-score: over them all), so a dense-only hit that matches the
    query's words gets their credit instead of none.

    ``families`` (run name → family): runs of one family are views of one piece of evidence (the dense search
    of each vector kind: one query vector against the items' text, image and combined vectors), so a candidate
    gets its best weighted score among them, not their sum: an item with vectors of three kinds does not
    outscore one with a text vector only just by being in three runs."""
    if normaliser not in NORMALISERS:
        raise ValidationError(
            "normaliser", f"unknown normaliser {normaliser!r}", f"use one of {', '.join(NORMALISERS)}"
        )
    norm = NORMALISERS[normaliser]
    lists = _run_lists(runs)
    sources = _sources(lists)
    totals: dict[str, float] = dict.fromkeys(sources, 0.0)
    best: dict[str, dict[str, float]] = {}  # per family, each item's best weighted score among its runs
    for name, ids, values, _ in lists:
        if not ids:
            continue
        w = (weights or {}).get(name, 1.0)
        family = families.get(name) if families else None
        if family is not None:
            top = best.setdefault(family, {})
            for item_id, value in zip(ids, _normalised(values, normaliser), strict=True):
                mine = w * value
                if item_id not in top or mine > top[item_id]:
                    top[item_id] = mine
            continue
        if completed is None or name not in completed:
            for item_id, value in zip(ids, _normalised(values, normaliser), strict=True):
                totals[item_id] += w * value
            continue
        own = set(ids)
        extra = [(i, float(v)) for i, v in completed[name].items() if i in totals and i not in own]
        every = np.asarray(values + [v for _, v in extra], dtype=np.float64)
        if normaliser == "minmax":
            lo, hi = COMPLETED_FLOOR * min(values), max(values)
            filled = np.ones_like(every) if hi - lo < 1e-12 else np.clip((every - lo) / (hi - lo), 0.0, 1.0)
        else:
            filled = norm(every)
        for item_id, value in zip([*ids, *(i for i, _ in extra)], filled.tolist(), strict=True):
            totals[item_id] += w * value
    for top in best.values():
        for item_id, value in top.items():
            totals[item_id] += value
    return _ranked(totals, sources)


def _normalised(values: list[float], normaliser: str) -> list[float]:
    """A run's scores normalised by ``normaliser``; min-max in plain floats (the same IEEE operations as
    :func:`min_max`, without NumPy's per-call cost on a few dozen values)."""
    if normaliser != "minmax":
        return list(NORMALISERS[normaliser](np.asarray(values, dtype=np.float64)).tolist())
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [1.0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]


QPP_DEPTH = 10  # the top scores a run's NQC is measured on


def nqc(scores: np.ndarray | Sequence[float], depth: int = QPP_DEPTH) -> float:
    """A run's normalised query commitment: the standard deviation of its top ``depth`` scores over their
    mean magnitude (positions it did not fill count as 0, the score of an item that matched nothing).
    Scale-free, so runs of different scorers (cosine, BM25F) compare; 0 for an empty or flat run."""
    if depth < 1:
        return 0.0
    head = [float(v) for v in scores[:depth]]  # plain floats: ten values, numpy's call overhead would dominate
    mean = sum(head) / depth
    if abs(mean) < 1e-12:
        return 0.0
    variance = (sum((v - mean) ** 2 for v in head) + (depth - len(head)) * mean * mean) / depth
    return math.sqrt(variance) / abs(mean)


@dataclass(frozen=True, slots=True)
class Commitment:
    """What :func:`committed_weights` needs of one run: its NQC, whether it filled the ``depth`` positions the
    NQC is measured on, and whether it scored below 0 among them."""

    nqc: float
    filled: bool
    negative: bool


def commitment(hits: Hits, depth: int = QPP_DEPTH) -> Commitment:
    head: list[float] = hits.scores[:depth].tolist()  # plain floats, read once
    return Commitment(nqc(head, depth), len(hits) >= depth, any(v < 0.0 for v in head))


def committed_weights(
    runs: Mapping[str, Hits],
    weights: Mapping[str, float] | None = None,
    depth: int = QPP_DEPTH,
    known: Mapping[str, Commitment] | None = None,
) -> dict[str, float]:
    """Each run's weight (default 1) times its NQC over the largest NQC of the runs (:func:`nqc`). The weights
    stay as given when no run has any (every run flat or empty); when no run filled ``depth`` positions (a
    catalog of a few items: the NQC of two or three scores is noise); and when a run scores below 0 in its
    top (the NQC is a ratio to the mean score: meaningless for cosines around 0 with another modality's
    vectors). ``known``: runs' :func:`commitment` already computed (at ``depth``), for weighing the same runs
    many ways."""
    base = {name: (weights or {}).get(name, 1.0) for name in runs}
    facts = {name: known[name] if known and name in known else commitment(runs[name], depth) for name in runs}
    if not any(f.filled for f in facts.values()) or any(f.negative for f in facts.values()):
        return base
    best = max((f.nqc for f in facts.values()), default=0.0)
    if best <= 0.0:
        return base
    return {name: base[name] * facts[name].nqc / best for name in runs}


FUSERS: dict[str, Callable[..., list[FusedHit]]] = {
    "rrf": lambda runs, weights=None, completed=None, families=None: rrf(runs, weights),
    "convex-minmax": lambda runs, weights=None, completed=None, families=None: convex(
        runs, weights, "minmax", completed, families
    ),
    "convex-zscore": lambda runs, weights=None, completed=None, families=None: convex(
        runs, weights, "zscore", completed, families
    ),
}
#: the fusion methods that use completed scores (rank fusion has no score to complete)
COMPLETES = frozenset({"convex-minmax", "convex-zscore"})


def fuse(
    name: str,
    runs: Mapping[str, Hits],
    weights: Mapping[str, float] | None = None,
    completed: Completed | None = None,
    families: Mapping[str, str] | None = None,
) -> list[FusedHit]:
    """Fuse with the method called ``name`` (``rrf``, ``convex-minmax``, ``convex-zscore``); ``completed``:
    runs' scores of candidates they did not return (:func:`convex`; rank fusion ignores them); ``families``:
    runs that are views of one piece of evidence, counted by their best (:func:`convex`; rank fusion sums)."""
    if name not in FUSERS:
        raise ValidationError("fusion", f"unknown fusion method {name!r}", f"use one of {', '.join(FUSERS)}")
    return FUSERS[name](runs, weights, completed, families)


def to_hits(fused: list[FusedHit], k: int, scores: Sequence[float] | None = None) -> Hits:
    """The first ``k`` fused hits with ``scores`` (default: their fused scores); each hit's
    :class:`~xmodal.provenance.Provenance` names the contributing strategies, best rank first."""
    top = fused[:k]
    prov = tuple(provenance(h) for h in top)
    hits = Hits.of([h.id for h in top], list(scores[: len(top)]) if scores is not None else [h.score for h in top])
    return Hits(hits.ids, hits.scores, prov)


def provenance(hit: FusedHit) -> Provenance:
    """The strategies that found ``hit``, best rank first (ties by name)."""
    return Provenance(sorted(hit.sources, key=lambda s: (hit.sources[s][0], s)))
