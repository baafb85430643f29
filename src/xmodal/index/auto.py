"""The engine's default index: exact while small, FAISS HNSW above a size threshold.

Below ``threshold`` (10k by default) an exact scan stays within the HNSW latency budget (10k x 384
float32 is 15 MB of memory traffic, ~1-2 ms; about a tenth of the 100k exact figure in
docs/benchmarks/search.md) and has perfect recall, no build cost and no dependency; the engine may
search three vector kinds per query. Above it the vectors move into an :class:`HNSWIndex`, once. The
move back happens only below ``threshold // 2`` (hysteresis, so a workload that hovers around the
threshold does not rebuild the graph over and over). Without FAISS installed it stays exact and
logs a warning once: still correct, only slower.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependency, StorageError
from .base import FORMAT_VERSION, MANIFEST, Labels, Scores, VectorIndex, Vectors
from .exact import ExactIndex, read_manifest
from .hnsw import HNSWIndex, check_options

log = logging.getLogger(__name__)

#: Exact search at 10k 384-d vectors stays within the 3 ms HNSW latency budget (docs/benchmarks/search.md).
DEFAULT_THRESHOLD = 10_000
INNER = "inner"
REBUILD = "delete the folder to rebuild it"


class AutoIndex:
    """Exact search up to ``threshold`` vectors, HNSW (with ``hnsw_options``) above it."""

    kind = "auto"

    def __init__(self, dim: int, threshold: int = DEFAULT_THRESHOLD, **hnsw_options: Any) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ConfigError(f"auto index option threshold must be a positive integer, got {threshold!r}")
        check_options(hnsw_options, extra=("threshold",))
        self.dim = int(dim)
        self.threshold = threshold
        self.hnsw_options = dict(hnsw_options)
        self._inner: VectorIndex = ExactIndex(self.dim)
        self._no_faiss = False

    @property
    def inner_kind(self) -> str:
        """``exact`` or ``hnsw``: the index currently answering."""
        return self._inner.kind

    def __len__(self) -> int:
        return len(self._inner)

    def labels(self) -> Labels:
        return self._inner.labels()

    def add(self, labels: Labels, vectors: Vectors) -> None:
        self._inner.add(labels, vectors)
        if isinstance(self._inner, ExactIndex) and len(self._inner) > self.threshold and not self._no_faiss:
            self._promote(self._inner)

    def remove(self, labels: Labels) -> int:
        removed = self._inner.remove(labels)
        if isinstance(self._inner, HNSWIndex) and len(self._inner) < self.threshold // 2:
            self._demote(self._inner)
        return removed

    def search(self, queries: Vectors, k: int, allowed: Labels | None = None) -> tuple[Labels, Scores]:
        return self._inner.search(queries, k, allowed)

    def compact(self) -> None:
        """Drop the tombstones of removed vectors (the HNSW graph keeps them until rebuilt); exact: nothing."""
        if isinstance(self._inner, HNSWIndex):
            self._inner.compact()

    def _promote(self, exact: ExactIndex) -> None:
        try:
            graph = HNSWIndex(self.dim, **self.hnsw_options)
        except MissingDependency as exc:
            self._no_faiss = True
            log.warning("auto index stays exact above %d vectors: %s", self.threshold, exc)
            return
        graph.add(exact.labels(), exact.vectors())
        self._inner = graph

    def _demote(self, graph: HNSWIndex) -> None:
        exact = ExactIndex(self.dim)
        for labels, vectors in graph.export():
            exact.add(labels, vectors)
        self._inner = exact

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._inner.save(directory / INNER)
        manifest = {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "count": len(self),
            "threshold": self.threshold,
            "hnsw_options": self.hnsw_options,
            "inner": self._inner.kind,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: Path) -> AutoIndex:
        manifest = read_manifest(directory, cls.kind)
        try:
            index = cls(int(manifest["dim"]), int(manifest["threshold"]), **dict(manifest["hnsw_options"]))  # type: ignore[call-overload]
            inner_kind = manifest["inner"]
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise StorageError(f"{directory}: unreadable auto index manifest ({exc}); {REBUILD}") from exc
        inner: VectorIndex
        if inner_kind == "exact":
            inner = ExactIndex.load(directory / INNER)
        elif inner_kind == "hnsw":
            try:
                inner = HNSWIndex.load(directory / INNER)
            except MissingDependency as exc:  # rebuilt from the store, as exact
                raise StorageError(f"{directory}: cannot read the HNSW graph: {exc}") from exc
        else:
            raise StorageError(f"{directory}: unknown inner index kind {inner_kind!r}; {REBUILD}")
        if inner.dim != index.dim or len(inner) != manifest.get("count"):
            raise StorageError(f"{directory}: the inner index does not match the manifest; {REBUILD}")
        index._inner = inner
        return index
