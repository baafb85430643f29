"""Scoring the next vector set before the switch (``xmodal eval QUERIES --encoder next``).

The queries are encoded with the new encoder and searched exactly (cosine over every new vector, the best
kind of each item, as a dense search with target ``any`` does) against the vectors built so far; the
report is the same :class:`~xmodal.eval.runner.EvalReport` as ``eval`` gives for the current vectors in
dense mode, so the two are comparable side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..encoders import Content
from ..errors import XmodalError
from ..eval.metrics import METRICS, score_ranking
from ..eval.runner import EvalQuery, EvalReport
from ..ingest.prepare import Rejection
from ..media_loaders import media_loader
from ..records import Target
from .reindex import Reindex


def evaluate_next(
    job: Reindex,
    queries: Iterable[EvalQuery | Rejection],
    *,
    base_dir: Path | None = None,
    k: int = 10,
    target: str = Target.ANY,
    progress: Callable[[int], object] | None = None,
) -> EvalReport:
    """recall@1/5/10, MRR and nDCG@10 of the new vectors of ``job`` (see the module notes)."""
    if job.space is None:
        raise XmodalError("no reindex is under way: start one with `xmodal reindex --encoder NAME`")
    enc = job.encoder()
    matrices = job.space.matrices()
    kinds = [kind for kind in matrices if target in (Target.ANY, kind)]
    catalog = job.store.catalog_rows()
    id_of = dict(zip(catalog.rows, catalog.ids, strict=True))
    known = set(id_of.values())
    all_rows = np.unique(np.concatenate([matrices[kind][0] for kind in kinds])) if kinds else np.zeros(0, np.int64)
    report = EvalReport(k=k)
    sums = dict.fromkeys(METRICS, 0.0)
    for entry in queries:
        if progress is not None:
            progress(1)
        if isinstance(entry, Rejection):
            report.skipped.append(entry)
            continue
        try:
            media = (
                {"image": media_loader("image").load(entry.image, base_dir, item="query").content}
                if entry.image
                else {}
            )
            content = Content(text=entry.text or None, media=media)
            vector = np.asarray(enc.encode_queries([content]), np.float32)[0]
        except XmodalError as exc:
            report.skipped.append(Rejection(entry.where, str(exc)))
            continue
        best = np.full(len(all_rows), -np.inf, np.float32)
        for kind in kinds:
            rows, vecs = matrices[kind]
            at = np.searchsorted(all_rows, rows)
            np.maximum.at(best, at, vecs @ vector)
        top = np.argsort(-best, kind="stable")[:k]
        ranking = [id_of[int(all_rows[i])] for i in top if np.isfinite(best[i]) and int(all_rows[i]) in id_of]
        report.unknown_relevant += sum(1 for item in entry.relevant if item not in known)
        for name, value in score_ranking(ranking, entry.relevant).items():
            sums[name] += value
        report.queries += 1
    report.metrics = {name: total / report.queries if report.queries else 0.0 for name, total in sums.items()}
    return report
