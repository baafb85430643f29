"""Fairness report: every metric per group of queries, and the largest gap between groups
(``xmodal eval QUERIES --by FIELD``).

A query's group is the value of ``FIELD`` on its line of the query file (``{"text": ..., "language":
"de"}``), or else the attribute ``FIELD`` of the items judged relevant to it (a dotted path reaches a nested
attribute: ``brand.country``): their common value, ``(mixed)`` when they differ, ``(none)`` when none has it.
So a deployment can see whether quality holds across the languages of its users or the categories of its
catalog.

Each group's mean metric comes with a bootstrap percentile interval (:mod:`.bootstrap`, the group's queries
resampled). The gap of a metric is the best group's mean minus the worst's; its interval comes from the same
resamples (each group resampled on its own, the gap taken in each resample), so a gap whose interval holds 0
is not told apart from chance at that many queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ValidationError
from ..ingest.prepare import Rejection
from .bootstrap import CONFIDENCE, RESAMPLES, Interval, intervals, resample_counts
from .metrics import METRICS
from .runner import EvalQuery, EvalReport, Scored, score_queries

if TYPE_CHECKING:
    from ..engine import Engine

MIXED, NONE = "(mixed)", "(none)"


@dataclass(slots=True)
class Group:
    """One group's queries: how many, where their group came from, and each metric's mean and interval."""

    name: str
    queries: int
    from_query: int  # grouped by the query line's field
    from_items: int  # grouped by the relevant items' attribute
    metrics: dict[str, Interval] = field(default_factory=dict)


@dataclass(slots=True)
class FairnessReport:
    """Per-group metrics and the largest gap per metric (None with fewer than two groups)."""

    by: str
    report: EvalReport
    groups: list[Group]
    gaps: dict[str, tuple[Interval, str, str] | None]  # metric -> (gap, best group, worst group)
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        gaps: dict[str, Any] = {}
        for name, gap in self.gaps.items():
            gaps[name] = None if gap is None else {**gap[0].to_dict(), "best": gap[1], "worst": gap[2]}
        return {
            "by": self.by,
            "queries": self.report.queries,
            "k": self.report.k,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "confidence": CONFIDENCE},
            "groups": [
                {
                    "group": g.name,
                    "queries": g.queries,
                    "grouped_by": {"query_field": g.from_query, "item_attribute": g.from_items},
                    **{name: g.metrics[name].to_dict() for name in METRICS},
                }
                for g in self.groups
            ],
            "largest_gap": gaps,
            "unknown_relevant": self.report.unknown_relevant,
            "skipped": [{"where": r.where, "reason": r.reason} for r in self.report.skipped],
        }


def check_field(name: str) -> str:
    """A ``--by`` field: a non-empty name (a dotted path for a nested item attribute)."""
    if not name or not name.strip() or any(not part for part in name.split(".")):
        raise ValidationError("--by", f"{name!r} is not a field name", "e.g. --by language or --by category")
    return name.strip()


def evaluate_by(
    engine: Engine,
    queries: Iterable[EvalQuery | Rejection],
    by: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    **options: Any,
) -> FairnessReport:
    """Run the queries (``options`` as :func:`~xmodal.eval.runner.evaluate`'s) and report per group of ``by``."""
    by = check_field(by)
    report = EvalReport(k=int(options.get("k", 10)))
    scored = list(score_queries(engine, queries, report, **options))
    grouped: dict[str, list[Scored]] = {}
    sources: dict[str, list[int]] = {}
    for one in scored:
        name, from_query = _group_of(engine, one.query, by)
        grouped.setdefault(name, []).append(one)
        sources.setdefault(name, [0, 0])[0 if from_query else 1] += 1
    if scored and set(grouped) == {NONE}:
        raise ValidationError(
            "--by",
            f"no query has the field {by!r} and no relevant item has the attribute {by!r}",
            'add it to the query lines ("' + by + '": "...") or use an item attribute the catalog has',
        )
    report.metrics = {name: float(np.mean([s.metrics[name] for s in scored])) if scored else 0.0 for name in METRICS}
    groups, boots = [], {}
    for name in sorted(grouped):
        members = grouped[name]
        values = np.array([[s.metrics[m] for s in members] for m in METRICS])  # [metrics, queries]
        counts = resample_counts(len(members), resamples, seed=seed, key=name)
        boots[name] = values @ counts.T / len(members)  # [metrics, resamples]
        spans = intervals(values, counts)
        group = Group(name, len(members), sources[name][0], sources[name][1])
        group.metrics = dict(zip(METRICS, spans, strict=True))
        groups.append(group)
    return FairnessReport(by, report, groups, _gaps(groups, boots), resamples, seed)


def _gaps(groups: list[Group], boots: Mapping[str, np.ndarray]) -> dict[str, tuple[Interval, str, str] | None]:
    out: dict[str, tuple[Interval, str, str] | None] = {}
    for i, metric in enumerate(METRICS):
        if len(groups) < 2:
            out[metric] = None
            continue
        ranked = sorted(groups, key=lambda g: (-g.metrics[metric].mean, g.name))
        best, worst = ranked[0], ranked[-1]
        per_resample = np.stack([boots[g.name][i] for g in groups])  # [groups, resamples]
        spread = per_resample.max(axis=0) - per_resample.min(axis=0)
        tail = (1.0 - CONFIDENCE) / 2
        low, high = np.quantile(spread, [tail, 1.0 - tail])
        gap = best.metrics[metric].mean - worst.metrics[metric].mean
        out[metric] = (Interval(gap, float(low), float(high)), best.name, worst.name)
    return out


def _group_of(engine: Engine, query: EvalQuery, by: str) -> tuple[str, bool]:
    """The query's group and whether its line gave it (else the relevant items' attribute did)."""
    if by in query.fields:
        return query.fields[by], True
    values = set()
    for item in engine.get_many(sorted(query.relevant)).items:
        value = _attribute(item.attributes, by)
        if value is not None:
            values.add(value)
    if not values:
        return NONE, False
    return (values.pop() if len(values) == 1 else MIXED), False


def _attribute(attributes: Mapping[str, Any], path: str) -> str | None:
    value: Any = attributes
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    return None
