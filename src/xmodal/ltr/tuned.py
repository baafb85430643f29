"""The self-tuned fusion model and what it is made of, fitted by :mod:`.selftune`.

A configuration is one way to fuse a query's runs (a weight per strategy, 0 leaving its run out,
optionally scaled by each run's query-performance prediction, :func:`.fusion.committed_weights`);
:class:`TunedFusion` predicts, from features of the query and of its runs (:func:`features`), the nDCG@10
each configuration would give, and that of the untuned plan (the bandit's, one more choice: None), and
chooses one per query, so a query kind the untuned plan serves best keeps its results. It is plain data
(``tuning.json`` and ``.npy`` arrays under ``<index>/ltr/tuned/``), and the pipeline uses it while it is active
(:meth:`~.pipeline.Pipeline.tuned_active`). A fit that finds the catalog too small, or with too little text, to tune
on (:class:`Untunable`) leaves why in ``untunable.json`` there instead, for ``explain`` to say.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StorageError, XmodalError
from ..records import Hits, Query, Target
from ..store.files import write_json
from .context import CONTEXT_FEATURES
from .fusion import Commitment, FusedHit, committed_weights, nqc

if TYPE_CHECKING:
    from .policy import LinearBandit

TUNING_FORMAT = 2  # 2: the untuned plan is a choice (the last column of the coefficients)
FOLDER = "tuned"
UNTUNABLE = "untunable.json"  # why the last fit found nothing to tune on, when no model was fitted since
HEAD = 10  # the head of a run its features describe, and the cut of the gain (nDCG@10)
GRID = (0.0, 0.3, 1.0)  # the weights a configuration gives each strategy
HANDOVER = 2_000  # observations of real searches after which the bandit's plan takes over
#: ``explain.tuning.status`` with no model in use and none being fitted
NO_MODEL = "no self-tuned fusion: run `xmodal ltr tune`"
PRIOR_WEIGHT = 200.0  # the pseudo-queries' evidence in the bandit's prior, in real observations


@dataclass(frozen=True, slots=True)
class Configuration:
    """One way to fuse a query's runs: a weight per strategy (0: its run is left out), scaled by each run's
    NQC over the most committed run's when ``committed``."""

    weights: tuple[tuple[str, float], ...]
    committed: bool

    def apply(self, runs: Mapping[str, Hits], known: Mapping[str, Commitment] | None = None) -> dict[str, float]:
        """The weights of the runs this configuration fuses (``known``: as in :func:`.fusion.committed_weights`)."""
        given = {name: w for name, w in self.weights if w > 0 and name in runs and len(runs[name])}
        if not given:  # none of its strategies ran: every run that did, equally
            given = {name: 1.0 for name, hits in runs.items() if len(hits)}
        kept = {name: runs[name] for name in given}
        return committed_weights(kept, given, known=known) if self.committed else given

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "committed": self.committed}


def fitted_on(query: Query) -> bool:
    """Whether ``query`` is of the kind the model is fitted on: the pseudo-queries are text alone, compared with
    every vector kind (:mod:`.pseudo`). A query with an image or another medium, or one that targets a vector kind,
    has runs the model never saw (an image query's dense run is its only good one); it keeps the untuned plan."""
    return query.image is None and not query.media and query.target == Target.ANY


def configurations(arms: Sequence[str]) -> list[Configuration]:
    """Every weighting of ``arms`` on :data:`GRID` (at least one above 0, the largest 1), each with and
    without the runs' query-performance prediction."""
    out: list[Configuration] = []
    for grid in product(GRID, repeat=len(arms)):
        if max(grid) != 1.0:
            continue
        weights = tuple((a, w) for a, w in zip(arms, grid, strict=True))
        out.extend(Configuration(weights, committed) for committed in (False, True))
    return out


def feature_names(arms: Sequence[str]) -> tuple[str, ...]:
    per_run = ("ran", "top", "margin", "spread", "nqc", "filled")
    names = [f"context:{c}" for c in CONTEXT_FEATURES]
    names += [f"{a}:{f}" for a in arms for f in per_run]
    names += [f"overlap:{a}:{b}" for a, b in combinations(arms, 2)]
    return tuple(names)


def features(context: np.ndarray, runs: Mapping[str, Hits], arms: Sequence[str]) -> np.ndarray:
    """The query's context vector, then per strategy (absent runs are zeros) whether it ran, its top score,
    the margin of its first over its second score and the spread of its head, both relative to the top, its
    NQC and how much of the head it filled; then the share of top-10 items each pair of runs has in common."""
    out = [float(v) for v in context]
    heads: dict[str, set[str]] = {}
    for arm in arms:
        hits = runs.get(arm)
        if hits is None or len(hits) == 0:
            out += [0.0] * 6
            heads[arm] = set()
            continue
        scores = [float(v) for v in hits.scores[:HEAD]]
        top = scores[0]
        scale = abs(top) if abs(top) > 1e-12 else 1.0
        second = scores[1] if len(scores) > 1 else 0.0
        out += [
            1.0,
            math.log1p(max(top, 0.0)),
            (top - second) / scale,
            (top - scores[-1]) / scale,
            nqc(hits.scores, HEAD),
            len(scores) / HEAD,
        ]
        heads[arm] = set(hits.ids[:HEAD].tolist())
    for a, b in combinations(arms, 2):
        out.append(len(heads[a] & heads[b]) / HEAD)
    return np.asarray(out, dtype=np.float64)


def gain(fused: Sequence[FusedHit], relevant: Sequence[str]) -> float:
    """nDCG@10 of a fused list with binary judgments."""
    wanted = set(relevant)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(fused[:HEAD]) if hit.id in wanted)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), HEAD)))
    return dcg / ideal if ideal else 0.0


class TunedFusion:
    """The fitted model: per configuration, and for the untuned plan (the last column), a linear prediction
    of the gain from standardised features."""

    def __init__(
        self,
        arms: Sequence[str],
        configs: Sequence[Configuration],
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        report: Mapping[str, Any],
        prior: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.arms = tuple(arms)
        self.configs = list(configs)
        self.mean, self.scale, self.coef = mean, scale, coef
        self.report = dict(report)
        dim = len(CONTEXT_FEATURES)
        self.prior = prior or (np.zeros((len(self.arms), dim, dim)), np.zeros((len(self.arms), dim)))

    def seed_policy(self, policy: LinearBandit) -> None:
        """Add the pseudo-queries' evidence to a policy that has seen no real search: each strategy's linear
        model starts from how often its head held a judged item in each context, weighed as
        :data:`PRIOR_WEIGHT` real observations in all (so real feedback soon outweighs it). For a model that is
        not accepted (:meth:`~.pipeline.Pipeline.set_tuned`)."""
        A, b = self.prior
        for i, arm in enumerate(self.arms):
            if arm in policy.arms:
                policy.add_evidence(arm, A[i], b[i])

    @property
    def accepted(self) -> bool:
        return bool(self.report.get("accepted"))

    @property
    def anchor(self) -> int:
        return int(self.report.get("anchor", 0))

    @property
    def margin(self) -> float:
        return float(self.report.get("margin", 0.0))

    def choose(self, context: np.ndarray, runs: Mapping[str, Hits]) -> Configuration | None:
        """The configuration of highest predicted gain (None: the untuned plan), unless it beats the anchor
        (the choice best on average) by less than the margin: away from the anchor only where the model is
        sure enough."""
        x = (features(context, runs, self.arms) - self.mean) / self.scale
        predicted = np.append(x, 1.0) @ self.coef
        chosen = int(pick(predicted[None, :], self.anchor, self.margin)[0])
        return self.configs[chosen] if chosen < len(self.configs) else None

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "coef.npy", self.coef)
        np.save(directory / "prior_A.npy", self.prior[0])
        np.save(directory / "prior_b.npy", self.prior[1])
        meta = {
            "format": TUNING_FORMAT,
            "arms": list(self.arms),
            "features": list(feature_names(self.arms)),
            "configurations": [c.to_dict() for c in self.configs],
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "report": self.report,
        }
        write_json(directory / "tuning.json", meta, indent=1)

    @classmethod
    def load(cls, directory: Path) -> TunedFusion:
        try:
            meta = json.loads((directory / "tuning.json").read_text(encoding="utf-8"))
            if meta.get("format") != TUNING_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this version reads {TUNING_FORMAT}")
            arms = tuple(meta["arms"])
            configs = [
                Configuration(tuple((a, float(w)) for a, w in c["weights"].items()), bool(c["committed"]))
                for c in meta["configurations"]
            ]
            coef = np.load(directory / "coef.npy", allow_pickle=False)
            prior = (
                np.load(directory / "prior_A.npy", allow_pickle=False),
                np.load(directory / "prior_b.npy", allow_pickle=False),
            )
            dim = len(CONTEXT_FEATURES)
            if prior[0].shape != (len(arms), dim, dim) or prior[1].shape != (len(arms), dim):
                raise ValueError(f"a policy prior of shape {prior[0].shape}, {prior[1].shape} for {len(arms)} arms")
            mean, scale = np.asarray(meta["mean"], dtype=np.float64), np.asarray(meta["scale"], dtype=np.float64)
            width = len(feature_names(arms))
            if coef.shape != (width + 1, len(configs) + 1) or mean.shape != (width,) or scale.shape != (width,):
                raise ValueError(
                    f"arrays of shape {coef.shape}, {mean.shape}, {scale.shape} do not fit {width} features"
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(
                f"the self-tuned fusion in {directory} cannot be read ({exc}); run `xmodal ltr tune` again"
            ) from exc
        return cls(arms, configs, mean, scale, coef, meta.get("report", {}), prior)


TIE = 1e-9  # predicted gains this close are equal: twin configurations differ by rounding alone


def pick(predicted: np.ndarray, anchor: int, margin: float) -> np.ndarray:
    """Per row of predicted gains, the best configuration (the first of those within :data:`TIE` of the best, so
    two configurations that fuse a query alike, e.g. one run with and without its query-performance scaling,
    are told apart the same way however the fit rounded), or ``anchor`` when that is within ``margin`` of it."""
    best = np.argmax(predicted >= predicted.max(axis=1, keepdims=True) - TIE, axis=1)
    rows = np.arange(len(predicted))
    sure = predicted[rows, best] - predicted[rows, anchor] >= margin
    out: np.ndarray = np.where(sure, best, anchor)
    return out


def tuned_depths(arms: Sequence[str], budget: int) -> dict[str, int]:
    """Equal shares of ``budget`` for the relevance strategies a tuned plan runs (every one available)."""
    share = max(budget // max(len(arms), 1), 1)
    return dict.fromkeys(arms, share)


class Untunable(XmodalError):
    """The catalog, as of change ``seq``, is too small or has too little text to tune on: the default mode keeps its
    untuned fusion (the bandit's plan)."""

    def __init__(self, reason: str, seq: int) -> None:
        super().__init__(reason)
        self.reason, self.seq = reason, seq


def save_untunable(directory: Path, found: Untunable) -> None:
    write_json(directory / UNTUNABLE, {"reason": found.reason, "seq": found.seq})


def load_untunable(directory: Path) -> Untunable | None:
    """The last fit's :class:`Untunable`, None when there is none (or it cannot be read: a fit is then due again)."""
    try:
        meta = json.loads((directory / UNTUNABLE).read_text(encoding="utf-8"))
        return Untunable(str(meta["reason"]), int(meta["seq"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe(model: TunedFusion | None, folder: Path) -> dict[str, Any]:
    """What ``xmodal ltr tune`` prints and ``explain`` shows: whether a model is in use and how it scored."""
    if model is None:
        found = load_untunable(folder / FOLDER)
        if found is not None:
            return {"tuned": False, "reason": found.reason, "seq": found.seq}
        return {"tuned": False, "reason": f"no self-tuned fusion in {folder}: run `xmodal ltr tune`"}
    return {"tuned": model.accepted, "arms": list(model.arms), **model.report}
