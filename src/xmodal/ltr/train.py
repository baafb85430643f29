"""Training the ranker from the engine's feedback log (``xmodal train-ranker``).

Every logged impression with at least one event is replayed: its query is prepared again, its
logged plan (or, for other modes, the plan the policy would choose now) is run and fused, and
features are computed for the items that were shown, labelled by the best event on each.
Propensities come from impressions logged with randomised positions (``context.randomized``);
without any, the examination model ``1 / position`` is assumed and the summary says so.
Features are computed at training time, so memory and popularity already include the logged
events (a known optimistic bias of replay; the simulation computes them at serving time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ValidationError
from ..feedback.base import FeedbackStore
from ..feedback.log import Event
from ..records import Query
from ..stale import clear as clear_stale
from .extension import pipeline
from .features import candidate_features
from .pipeline import Pipeline
from .policy import Allocation, Plan
from .ranker import LambdaRanker, estimate_propensities
from .training import LoggedList, training_set

if TYPE_CHECKING:
    from ..engine import Engine


def _best_events(events: list[Event]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for e in events:
        per = out.setdefault(e.query_id, {})
        per[e.item_id] = max(per.get(e.item_id, 0.0), e.reward)
    return out


def replay(
    pipe: Pipeline, log: FeedbackStore, max_positions: int = 10
) -> tuple[list[LoggedList], list[tuple[int, bool]]]:
    """Training lists from the log, and (position, clicked) of the randomised impressions."""
    labels = _best_events(log.events())
    lists, randomized = [], []
    for imp in log.impressions():
        rewards = labels.get(imp.query_id, {})
        if imp.context.get("randomized"):
            randomized += [(p + 1, item in rewards) for p, item in enumerate(imp.shown[:max_positions])]
        if not rewards or not imp.query:
            continue
        query = Query(text=imp.query)
        prepared = pipe.prepare(query)
        plan = Plan(
            tuple(
                Allocation(str(a["strategy"]), int(a["depth"]), float(a.get("weight", 1.0)))
                for a in imp.plan
                if a.get("strategy") in pipe.strategies
            ),
            0,
            {},
        )
        if not plan.allocations:
            plan = pipe.plan(prepared)
        vector = pipe.engine.encode_query(query)
        runs = pipe.retrieve(prepared, plan, vector)
        weights = pipe.fusion_weights(runs, plan.weights(), understanding=prepared.understanding)
        fused = {h.id: h for h in pipe.fuse(runs, weights, query, vector)}
        shown = [(p + 1, i) for p, i in enumerate(imp.shown) if i in fused]
        if not shown:
            continue
        X = candidate_features(pipe, query, vector, [fused[i] for _, i in shown], prepared.understanding)
        lists.append(LoggedList(X, [p for p, _ in shown], [rewards.get(i, 0.0) for _, i in shown]))
    return lists, randomized


def train_ranker(engine: Engine, *, ipw: bool = True, seed: int = 0, n_estimators: int = 150) -> dict[str, Any]:
    """Train lambdarank on the feedback log, save it as the engine's ranker and summarise."""
    pipe, log = pipeline(engine), engine.feedback_log
    lists, randomized = replay(pipe, log)
    if ipw and randomized:
        props, source = estimate_propensities([p for p, _ in randomized], [c for _, c in randomized], 10), "randomized"
    elif ipw:
        props, source = 1.0 / np.arange(1, 11, dtype=np.float64), "assumed 1/position (no randomised impressions)"
    else:
        props, source = None, "none (naive clicks)"
    X, y, groups, w = training_set(lists, props)
    if len(groups) < 2:
        raise ValidationError(
            "feedback",
            f"{len(groups)} impression(s) with events; the ranker needs at least 2",
            "collect feedback with search(..., log=True) and Engine.feedback first",
        )
    ranker = LambdaRanker(n_estimators=n_estimators, seed=seed).fit(
        X, y, groups, sample_weight=w, feature_names=pipe.features
    )
    pipe.set_ranker(ranker)
    clear_stale(engine.store, "ltr")  # its features were measured on the index's current vectors
    return {
        "impressions_used": len(groups),
        "rows": int(len(X)),
        "propensities": source,
        "model": str(pipe.dir / "ranker.txt"),
    }
