"""Request and response bodies of the ML-task routes (:mod:`.routes_tasks`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .models import FILTERS_HELP, Strict

KIND_HELP = "the vectors compared: primary (each item's own), or a vector kind of the index (text, image, ...)"
MAX_TEXTS = 100
Signal = Literal["image", "text"]
SIGNALS: tuple[Signal, ...] = ("image", "text")
MAX_IDS = 1_000
MAX_NEIGHBOURS = 1_000


class ClassifyRequest(BaseModel):
    """Classify texts, stored items, or (neither given) every item without a label, by kNN vote."""

    model_config = Strict
    label: str = Field(min_length=1, max_length=128, description="the attribute that holds the labels")
    texts: list[str] | None = Field(None, max_length=MAX_TEXTS, description="texts to classify")
    ids: list[str] | None = Field(None, max_length=MAX_IDS, description="stored items to classify")
    k: int = Field(10, ge=1, le=MAX_NEIGHBOURS, description="neighbours that vote")
    weighting: Literal["uniform", "distance"] = Field("distance", description="a vote's weight: 1 or 1/distance")
    kind: str = Field("primary", min_length=1, max_length=128, description=KIND_HELP)
    top: int = Field(3, ge=1, le=100, description="labels listed per prediction")
    neighbours: int = Field(0, ge=0, le=100, description="voters listed per prediction")
    filters: dict[str, Any] = Field(default_factory=dict, description="the labelled items: " + FILTERS_HELP)


class Neighbour(BaseModel):
    id: str
    label: str
    score: float


class PredictionOut(BaseModel):
    target: str = Field(description="the item id, or query:N for the N-th text")
    label: str
    confidence: float = Field(description="the label's share of the weighted votes")
    scores: dict[str, float]
    neighbours: list[Neighbour]


class ClassifyResponse(BaseModel):
    label: str
    k: int
    weighting: str
    labelled: int
    labels: dict[str, int] = Field(description="labelled items per label")
    predictions: list[PredictionOut]


class EvaluateRequest(BaseModel):
    """Cross-validate the kNN vote on the items labelled by ``label``."""

    model_config = Strict
    label: str = Field(min_length=1, max_length=128, description="the attribute that holds the labels")
    k: int = Field(10, ge=1, le=MAX_NEIGHBOURS)
    weighting: Literal["uniform", "distance"] = "distance"
    folds: int = Field(5, ge=2, le=20)
    seed: int = Field(0, ge=0, le=2**31)
    kind: str = Field("primary", min_length=1, max_length=128, description=KIND_HELP)
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)


class EvaluateResponse(BaseModel):
    label: str
    k: int
    weighting: str
    folds: int
    seed: int
    items: int
    labels: int
    macro_f1: float
    accuracy: float
    f1: dict[str, float]
    dropped: dict[str, int] = Field(description="labels with fewer items than folds, left out")


class ClusterRequest(BaseModel):
    """Cluster the stored vectors."""

    model_config = Strict
    method: Literal["kmeans", "hdbscan"] = "kmeans"
    n_clusters: int | None = Field(None, ge=2, le=1000, description="k-means clusters (null: chosen by silhouette)")
    min_cluster_size: int = Field(5, ge=2, le=100_000, description="HDBSCAN's smallest cluster")
    kind: str = Field("primary", min_length=1, max_length=128, description=KIND_HELP)
    seed: int = Field(0, ge=0, le=2**31)
    members: bool = Field(False, description="list every cluster's members and the noise items")
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)


class CentralItem(BaseModel):
    id: str
    title: str
    score: float


class Term(BaseModel):
    term: str
    weight: float


class ClusterOut(BaseModel):
    id: int
    name: str
    size: int
    central: list[CentralItem]
    terms: list[Term]
    members: list[str] | None = None


class ClusterResponse(BaseModel):
    method: str
    items: int
    params: dict[str, Any]
    clusters: list[ClusterOut]
    noise: list[str] | int = Field(description="the noise items (a count unless members)")


class DedupRequest(BaseModel):
    """Find near-duplicate groups."""

    model_config = Strict
    signals: list[Signal] = Field(default_factory=lambda: list(SIGNALS), min_length=1)
    thresholds: dict[Literal["correlation", "thumbnail", "phash", "cosine", "jaccard", "audio", "video"], float] = (
        Field(default_factory=dict, description="fixed thresholds (the others are calibrated on the collection)")
    )
    calibration_sample: int = Field(64, ge=0, le=1000, description="items copied to calibrate on")
    neighbours: int = Field(10, ge=1, le=100, description="stored-vector neighbours checked per image")
    seed: int = Field(0, ge=0, le=2**31)
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)


class PairOut(BaseModel):
    a: str
    b: str
    signal: str
    score: float


class GroupOut(BaseModel):
    ids: list[str]
    modalities: list[str]
    pairs: list[PairOut]


class ThresholdOut(BaseModel):
    signal: str
    value: float
    duplicate_when: Literal[">=", "<="]
    source: Literal["calibrated", "given", "default"]
    precision: float | None = None
    recall: float | None = None
    positives: int | None = None
    negatives: int | None = None


class DedupResponse(BaseModel):
    groups: list[GroupOut]
    thresholds: list[ThresholdOut]
    compared: dict[str, int]
    skipped: dict[str, str]
    unchecked: dict[str, str]
