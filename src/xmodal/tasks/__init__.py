"""The ML-task purposes over a stored index: ``classify`` (kNN vote), ``cluster`` (k-means, HDBSCAN) and
``dedup`` (near-duplicate groups within and across modalities).

Every task reads the index through the engine's public API and returns a plain result with ``to_dict()``;
the CLI (``xmodal classify|cluster|dedup``), REST (``POST /tasks/...``) and MCP are thin adapters over it.
scikit-learn, ImageHash and datasketch come with ``pip install 'xmodal[tasks]'``.

>>> from xmodal.tasks import classify, evaluate                     # doctest: +SKIP
>>> classify(engine, "category", queries=["a red bicycle"]).predictions[0].label
"""

from __future__ import annotations

from .calibrate import Threshold
from .classify import Classification, Evaluation, Prediction, classify, evaluate
from .cluster import Cluster, Clustering, cluster
from .data import PRIMARY
from .dedup import Dedup, DuplicateGroup, Pair, dedup
from .fingerprints import Fingerprinter, register_fingerprinter
from .knn import KnnVote

__all__ = [
    "PRIMARY",
    "Classification",
    "Cluster",
    "Clustering",
    "Dedup",
    "DuplicateGroup",
    "Evaluation",
    "Fingerprinter",
    "KnnVote",
    "Pair",
    "Prediction",
    "Threshold",
    "classify",
    "cluster",
    "dedup",
    "evaluate",
    "register_fingerprinter",
]
