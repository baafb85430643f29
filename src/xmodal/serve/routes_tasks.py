"""The ML-task purposes over REST: ``POST /tasks/classify``, ``/tasks/classify/evaluate``, ``/tasks/cluster``
and ``/tasks/dedup`` (:mod:`xmodal.tasks`).

Classifying texts or items is a read (the ``read`` scope). Evaluating, clustering and deduplicating read the
whole index and take seconds to minutes of CPU (dedup encodes copies of sampled images to calibrate), so
they need a key with the ``write`` scope: an anonymous caller cannot tie the server up with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request

from ..errors import MissingDependency
from ..records import Query
from .auth import Principal
from .bodies import CheckedRoute
from .deps import ReadKey, ServerState, WriteKey, server
from .errors import ApiError, responses
from .models_tasks import (
    ClassifyRequest,
    ClassifyResponse,
    ClusterRequest,
    ClusterResponse,
    DedupRequest,
    DedupResponse,
    EvaluateRequest,
    EvaluateResponse,
)

router = APIRouter(tags=["tasks"], route_class=CheckedRoute)
T = TypeVar("T")
ERRORS = responses(400, 401, 403, 413, 422, 429, 501)


async def _work(state: ServerState, caller: Principal, fn: Callable[[], T]) -> T:
    await state.limits.wait_turn(caller)
    try:
        return await state.limits.work_async(caller, fn, image=False)
    except MissingDependency as exc:
        raise ApiError(501, str(exc), None, f"install it on the server: pip install 'xmodal[{exc.extra}]'") from None


@router.post("/tasks/classify", response_model=ClassifyResponse, responses=ERRORS)
async def classify(request: Request, body: ClassifyRequest, caller: ReadKey) -> ClassifyResponse:
    """Classify ``texts``, the stored items ``ids``, or (neither) every item without a ``label`` value, by the
    weighted vote of the ``k`` most similar items labelled by ``label``; a confidence per label."""
    from ..tasks import classify as run

    state = server(request)
    queries = [Query(text=text) for text in body.texts] if body.texts is not None else None
    call = functools.partial(
        run,
        state.engine,
        body.label,
        ids=body.ids,
        queries=queries,
        k=body.k,
        weighting=body.weighting,
        kind=body.kind,
        filters=body.filters or None,
        top=body.top,
        neighbours=body.neighbours,
    )
    result = await _work(state, caller, call)
    return ClassifyResponse.model_validate(result.to_dict())


@router.post("/tasks/classify/evaluate", response_model=EvaluateResponse, responses=ERRORS)
async def evaluate(request: Request, body: EvaluateRequest, caller: WriteKey) -> EvaluateResponse:
    """Stratified cross-validation of the kNN vote on the items labelled by ``label``: macro-F1, accuracy and
    each label's F1."""
    from ..tasks import evaluate as run

    state = server(request)
    call = functools.partial(
        run,
        state.engine,
        body.label,
        k=body.k,
        weighting=body.weighting,
        folds=body.folds,
        seed=body.seed,
        kind=body.kind,
        filters=body.filters or None,
    )
    result = await _work(state, caller, call)
    return EvaluateResponse.model_validate(result.to_dict())


@router.post("/tasks/cluster", response_model=ClusterResponse, responses=ERRORS)
async def cluster(request: Request, body: ClusterRequest, caller: WriteKey) -> ClusterResponse:
    """Cluster the stored vectors (k-means, or HDBSCAN); each cluster named by its most central items and its
    top terms (c-TF-IDF)."""
    from ..tasks import cluster as run

    state = server(request)
    call = functools.partial(
        run,
        state.engine,
        method=body.method,
        n_clusters=body.n_clusters,
        min_cluster_size=body.min_cluster_size,
        kind=body.kind,
        filters=body.filters or None,
        seed=body.seed,
    )
    result = await _work(state, caller, call)
    return ClusterResponse.model_validate(result.to_dict(members=body.members))


@router.post("/tasks/dedup", response_model=DedupResponse, responses=ERRORS)
async def dedup(request: Request, body: DedupRequest, caller: WriteKey) -> DedupResponse:
    """Near-duplicate groups within and across modalities, with every threshold used (calibrated on the
    collection unless given) and its source."""
    from ..tasks import dedup as run

    state = server(request)
    call = functools.partial(
        run,
        state.engine,
        filters=body.filters or None,
        signals=tuple(dict.fromkeys(body.signals)),
        thresholds={str(name): value for name, value in body.thresholds.items()},
        calibration_sample=body.calibration_sample,
        neighbours=body.neighbours,
        seed=body.seed,
    )
    result = await _work(state, caller, call)
    return DedupResponse.model_validate(result.to_dict())
