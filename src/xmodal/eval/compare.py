"""Every search mode side by side on one judged query set, per query kind, with bootstrap intervals.

Each query runs in every mode; its metrics (nDCG@10, recall@10, recall@1, MRR: :mod:`.metrics`) are kept
per query, grouped by the query's ``kind`` (and all kinds together), and each group's means get
bootstrap 95% intervals (:mod:`.bootstrap`: the same resamples for every mode). Per group and metric,
the *best single strategy* is the single-strategy mode (every mode but the fusions in
:data:`FUSED_MODES`, unless told which) with the highest mean; every mode also gets the paired interval
of its difference from it, which is how "never below the best single strategy" is judged: the upper
end of the difference must reach zero.

A query that is bad as written (a :class:`~xmodal.errors.ValidationError` in some mode) is skipped in
every mode, so the modes stay paired; a mode that fails for a query in another way scores 0 on it and is
reported. With ``all``, a mode the index cannot run (e.g. generative retrieval that was never trained)
is left out with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ValidationError, XmodalError
from ..ingest.prepare import Rejection
from ..records import Query, Target
from .bootstrap import CONFIDENCE, RESAMPLES, Interval, intervals, resample_counts
from .metrics import score_ranking
from .runner import EvalQuery
from .sets import SetInfo, describe

if TYPE_CHECKING:
    from ..engine import Engine

#: What the comparison reports, in the order tables show them.
REPORTED = ("ndcg@10", "recall@10", "recall@1", "mrr")
#: Modes that combine several strategies; every other mode counts as a single strategy.
FUSED_ORDER = ("uniform", "rrf", "rsf", "learned")
FUSED_MODES = frozenset(FUSED_ORDER)
ALL = "all"
ALL_KINDS = "(all kinds)"
NO_KIND = "(no kind)"


def parse_modes(spec: str, available: Sequence[str]) -> tuple[list[str], bool]:
    """The modes named by ``spec`` (``all``, or names separated by commas) and whether it was ``all``; a
    :class:`ValidationError` naming an unknown mode and the index's modes."""
    if spec.strip() == ALL:  # the single strategies first, then the fusions
        fused = [mode for mode in FUSED_ORDER if mode in available]
        return [mode for mode in available if mode not in FUSED_MODES] + fused, True
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise ValidationError("mode", f"names no mode: {spec!r}", f"use all, or some of {', '.join(available)}")
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValidationError(
            "mode", f"unknown search mode {unknown[0]!r}", f"use all, or some of {', '.join(available)}"
        )
    return list(dict.fromkeys(names)), False


@dataclass(slots=True)
class Comparison:
    """Per-query metrics of every mode that ran, and the means and intervals computed from them."""

    modes: list[str]
    kinds: list[str | None]  # one per query that ran, aligned with ``scores``' columns
    scores: dict[str, np.ndarray]  # mode → [len(REPORTED), queries]
    single: list[str]
    set_info: SetInfo | None = None
    skipped_modes: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[str, list[Rejection]] = field(default_factory=dict)
    skipped: list[Rejection] = field(default_factory=list)
    unknown_relevant: int = 0
    k: int = 10
    resamples: int = RESAMPLES
    seed: int = 0
    confidence: float = CONFIDENCE

    def groups(self) -> list[tuple[str, np.ndarray]]:
        """(kind, column indices) per kind in the set's order (else first seen), then all kinds together."""
        order: list[str] = list(self.set_info.kinds) if self.set_info is not None else []
        for kind in self.kinds:
            label = kind or NO_KIND
            if label not in order:
                order.append(label)
        labels = np.array([kind or NO_KIND for kind in self.kinds], dtype=object)
        out = [(label, np.flatnonzero(labels == label)) for label in order]
        out = [(label, cols) for label, cols in out if len(cols)]
        if len(out) != 1:
            out.append((ALL_KINDS, np.arange(len(self.kinds))))
        return out

    def group_report(self, label: str, cols: np.ndarray) -> dict[str, Any]:
        counts = resample_counts(len(cols), self.resamples, seed=self.seed, key=label)
        stats: dict[str, dict[str, Interval]] = {}
        for mode in self.modes:
            found = intervals(self.scores[mode][:, cols], counts, self.confidence)
            stats[mode] = dict(zip(REPORTED, found, strict=True))
        best: dict[str, str] = {}
        versus: dict[str, dict[str, Interval]] = {mode: {} for mode in self.modes}
        for m, metric in enumerate(REPORTED):
            if not self.single:
                break
            top = max(self.single, key=lambda mode: (stats[mode][metric].mean, -self.single.index(mode)))
            best[metric] = top
            diffs = np.stack([self.scores[mode][m, cols] - self.scores[top][m, cols] for mode in self.modes])
            for mode, interval in zip(self.modes, intervals(diffs, counts, self.confidence), strict=True):
                versus[mode][metric] = interval
        split = self.set_info.split(label) if self.set_info is not None else None
        return {
            "kind": label,
            "split": split,
            "queries": len(cols),
            "best_single": best,
            "modes": {
                mode: {
                    **{metric: stats[mode][metric].to_dict() for metric in REPORTED},
                    "vs_best_single": {metric: versus[mode][metric].to_dict() for metric in versus[mode]},
                }
                for mode in self.modes
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": describe(self.set_info),
            "k": self.k,
            "queries": len(self.kinds),
            "modes": self.modes,
            "single_strategies": self.single,
            "skipped_modes": [{"mode": mode, "reason": reason} for mode, reason in self.skipped_modes],
            "bootstrap": {
                "resamples": self.resamples,
                "confidence": self.confidence,
                "seed": self.seed,
                "method": "percentile; queries resampled within each kind, the same resamples for every mode",
            },
            "kinds": [self.group_report(label, cols) for label, cols in self.groups()],
            "failed": {
                mode: {"queries": len(found), "first": {"where": found[0].where, "reason": found[0].reason}}
                for mode, found in self.failed.items()
                if found
            },
            "unknown_relevant": self.unknown_relevant,
            "skipped": [{"where": r.where, "reason": r.reason} for r in self.skipped],
        }


def probe(engine: Engine, modes: Sequence[str], text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The modes that can answer a query on this index, and (mode, reason) for those that cannot (a part
    that is missing or not set up, e.g. no trained generative model: any error but a bad query)."""
    ok: list[str] = []
    out: list[tuple[str, str]] = []
    for mode in modes:
        try:
            engine.search(Query(text=text, k=1, mode=mode))
        except ValidationError:
            ok.append(mode)  # the probe query's own fault: the mode is judged on the real queries
        except XmodalError as exc:
            out.append((mode, str(exc)))
        else:
            ok.append(mode)
    return ok, out


def compare(
    engine: Engine,
    queries: Sequence[EvalQuery | Rejection],
    modes: Sequence[str],
    *,
    single: Sequence[str] | None = None,
    set_info: SetInfo | None = None,
    base_dir: Path | None = None,
    k: int = 10,
    target: str | Target = Target.ANY,
    filters: Mapping[str, Any] | None = None,
    strict: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
    progress: Callable[[int], object] | None = None,
) -> Comparison:
    """Run every query in every mode of ``modes`` (checked by the caller, see :func:`parse_modes`).

    ``single``: the single-strategy modes the best one is chosen from (default: every mode but
    :data:`FUSED_MODES`)."""
    filters = dict(filters or {})
    Query(text="check", k=k, target=Target.parse(target), filters=filters)
    engine.match_rows(filters, strict=strict)  # a bad filter fails here, before any query runs
    modes = list(modes)
    chosen = [m for m in (single if single is not None else modes) if m in modes and m not in FUSED_MODES]
    result = Comparison(modes, [], {}, chosen, set_info, k=k, resamples=resamples, seed=seed)
    result.failed = {mode: [] for mode in modes}
    rows: dict[str, list[list[float]]] = {mode: [] for mode in modes}
    for entry in queries:
        if isinstance(entry, Rejection):
            result.skipped.append(entry)
            continue
        try:
            query = Query(
                text=entry.text, image=entry.image, filters=filters, k=k, target=Target.parse(target), strict=strict
            )
            found = {mode: _ranking(engine, query, mode, base_dir, result.failed, entry) for mode in modes}
        except ValidationError as exc:
            result.skipped.append(Rejection(entry.where, str(exc)))
            continue
        finally:
            if progress is not None:
                progress(1)
        result.kinds.append(entry.kind)
        result.unknown_relevant += sum(1 for item in entry.relevant if item not in engine)
        for mode, ranking in found.items():
            metrics = score_ranking(ranking, entry.relevant)
            rows[mode].append([metrics[name] for name in REPORTED])
    result.scores = {
        mode: np.asarray(values, dtype=np.float64).reshape(-1, len(REPORTED)).T for mode, values in rows.items()
    }
    return result


def _ranking(
    engine: Engine,
    query: Query,
    mode: str,
    base_dir: Path | None,
    failed: dict[str, list[Rejection]],
    entry: EvalQuery,
) -> list[str]:
    try:
        return list(engine.search(replace(query, mode=mode), base_dir=base_dir).hits.ids.tolist())
    except ValidationError:
        raise
    except XmodalError as exc:  # this mode failed on this query: no credit, reported
        failed[mode].append(Rejection(entry.where, str(exc)))
        return []
