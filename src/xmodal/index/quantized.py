"""HNSW over scalar-quantized vectors with exact rescoring from full-precision vectors on disk.

The graph and the codes in memory are FAISS ``IndexHNSWSQ`` (8-bit codes by default: 384 bytes for a
384-d vector instead of 1,536, plus the graph's links); the float32 vectors are kept by
:class:`~xmodal.index.vector_file.VectorFile`, memory-mapped from the checkpoint. A search asks the graph
for ``rescore`` times more candidates than it must return, reads those candidates' full vectors and ranks
them by their exact inner product: the scores returned are exact, and recall is the graph's recall at the
deeper cut.

Everything else is :class:`~xmodal.index.hnsw.HNSWIndex`'s: tombstoned deletes, compaction, and the
per-query plan of a filtered search (an exact scan of the allowed codes when they are few, else a walk
restricted to them, topped up by the scan when it comes back short), so a filtered search still returns
k hits whenever k allowed vectors are present and never one that is not allowed. Compaction rebuilds the
graph from the full vectors (never from the lossy codes) and retrains the quantizer on them; it also runs
while the quantizer was trained on fewer than ``train_size`` vectors and the index has doubled since.

Not an index kind of the ``local`` backend: its full vectors live beside its checkpoint, whose folder
the ``quantized`` backend (:mod:`xmodal.backends.quantized`) moves it to after each checkpoint
(:meth:`QuantizedIndex.attach`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, StorageError
from .base import Labels, Scores, Vectors, check_k, check_vectors
from .hnsw import GRAPH_FILE, HNSWIndex, check_labels, last_wins
from .vector_file import REBUILD, VectorFile

SLOTS_FILE = "slots.npy"
#: FAISS scalar quantizers by option value (bytes per dimension: 1, 0.75, 0.5, 2).
QUANTIZERS = {"sq8": "QT_8bit", "sq6": "QT_6bit", "sq4": "QT_4bit", "fp16": "QT_fp16"}
#: Graph defaults: M=16 keeps a 384-d vector at ~600 bytes of memory with sq8 (605 measured at 100k, fixed
#: costs included; docs/benchmarks.md); efSearch 256 with rescore 40 reads 400 candidates per 10 hits.
GRAPH_DEFAULTS: dict[str, Any] = {"m": 16, "ef_construction": 120, "ef_search": 256}
#: ``rescore``: candidates per hit read at full precision; ``train_size``: vectors the quantizer learns
#: its per-dimension ranges from; ``spill_rows``: rows held in memory between checkpoints before they are
#: written to disk (64k x 384-d: 96 MiB). Rescore 40: on real text vectors (1M WordNet MiniLM vectors,
#: lemma-name queries) recall@10 0.954 at 20, 0.972 at 40 for +0.2 ms p50 (docs/benchmarks.md).
#: ``fill_links``: a node's bottom-layer link list is filled up to its 2*M slots with the nearest candidates
#: the pruning heuristic dropped (FAISS ``keep_max_size_level0``; the slots are allocated either way, so the
#: memory is the same). Off by default: on 1M WordNet vectors with ~85 noisy copies per gloss it raised
#: recall@10 from 0.678 to 0.883 at the default search settings (0.963 at efSearch 2048, 0.974 at 4096 for
#: a 9.3 ms p50 idle) for ~2.1x the build's CPU; at the normal density (~8.5 copies) it costs ~0.01 of recall
#: at equal settings (0.963 against 0.972 at the defaults), hence off (docs/benchmarks.md).
OWN_DEFAULTS: dict[str, Any] = {
    "quantizer": "sq8",
    "rescore": 40,
    "train_size": 20_000,
    "spill_rows": 65_536,
    "fill_links": False,
}
#: The most candidates a search reads beyond ``k`` (a large k is not multiplied by ``rescore``).
MAX_EXTRA = 1000
SMALL_SAMPLE = 1000


def check_own(given: dict[str, Any]) -> dict[str, Any]:
    options = {**OWN_DEFAULTS, **given}
    if options["quantizer"] not in QUANTIZERS:
        raise ConfigError(
            f"quantized index option quantizer must be one of {sorted(QUANTIZERS)}, got {options['quantizer']!r}"
        )
    if not isinstance(options["fill_links"], bool):
        raise ConfigError(f"quantized index option fill_links must be true or false, got {options['fill_links']!r}")
    for name in ("rescore", "train_size", "spill_rows"):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"quantized index option {name} must be a positive integer, got {value!r}")
    return options


class QuantizedIndex(HNSWIndex):
    """FAISS ``IndexHNSWSQ`` (inner product) for candidates, full vectors on disk for exact scores."""

    kind = "quantized"
    MAPPED = False  # its graph's codes are read (the full vectors are the mapped part: VectorFile)

    def __init__(self, dim: int, **options: Any) -> None:
        from .hnsw import DEFAULTS

        unknown = set(options) - set(DEFAULTS) - set(OWN_DEFAULTS)
        if unknown:
            known = ", ".join(sorted({*DEFAULTS, *OWN_DEFAULTS}))
            raise ConfigError(f"unknown quantized index option(s) {sorted(unknown)}; known: {known}")
        own = check_own({name: options.pop(name) for name in list(options) if name in OWN_DEFAULTS})
        self.rescore, self.train_size = int(own["rescore"]), int(own["train_size"])
        self._qname = str(own["quantizer"])
        self._fill = bool(own["fill_links"])
        super().__init__(dim, **{**GRAPH_DEFAULTS, **options})
        self._qtype = getattr(self._faiss.ScalarQuantizer, QUANTIZERS[self._qname])
        self._graph = self._new_graph()
        self.options = {**self.options, **own}
        self.vectors = VectorFile(self.dim)
        self._slot_of = np.full(len(self._label_of), -1, dtype=np.int64)  # internal id -> slot in vectors
        self._trained_on = 0
        #: Where the owner spills rows not yet checkpointed (None: they stay in memory until a save).
        self.spill: Callable[[VectorFile], None] | None = None
        self.spill_rows = int(own["spill_rows"])

    def _new_graph(self) -> Any:
        if not hasattr(self, "_qtype"):  # HNSWIndex.__init__ asks before the quantizer is known
            return None
        graph = self._faiss.IndexHNSWSQ(self.dim, self._qtype, int(self.options["m"]), self._faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = int(self.options["ef_construction"])
        graph.hnsw.efSearch = self._ef = int(self.options["ef_search"])
        graph.keep_max_size_level0 = self._fill
        return graph

    def _set_search(self, graph: Any) -> None:
        """Give a loaded graph this index's efSearch and link filling (FAISS does not save the latter)."""
        super()._set_search(graph)
        graph.keep_max_size_level0 = self._fill

    def _trained_graph(self, sample: Vectors) -> Any:
        """A new empty graph whose quantizer is trained on ``sample``."""
        graph = self._new_graph()
        self._train(graph, sample)
        return graph

    def _train(self, graph: Any, sample: Vectors) -> None:
        """Learn each dimension's range; a small sample is widened to +-3 standard deviations of a random
        unit vector's coordinate (so the first vectors of an index do not fix a range too narrow)."""
        if len(sample) < SMALL_SAMPLE:
            wide = np.full((2, self.dim), 3 / np.sqrt(self.dim), dtype=np.float32) * np.array([[1], [-1]], np.float32)
            sample = np.vstack([sample, wide])
        graph.train(np.ascontiguousarray(sample, dtype=np.float32))

    def _sample(self, n: int) -> np.ndarray:
        """Positions of ``min(n, train_size)`` of n vectors to train on (seeded: the same data, the same index)."""
        if n <= self.train_size:
            return np.arange(n)
        return np.sort(np.random.default_rng(0).choice(n, self.train_size, replace=False))

    def tune(self, *, ef_search: int | None = None, rescore: int | None = None) -> None:
        """Change the search-time settings of this open index (a benchmark's sweep; not saved)."""
        if ef_search is not None:
            self._ef = self._graph.hnsw.efSearch = int(ef_search)
        if rescore is not None:
            self.rescore = int(rescore)

    @property
    def trained_on(self) -> int:
        """How many vectors the quantizer's ranges were learnt from."""
        return self._trained_on

    # -- writes -----------------------------------------------------------------------------------------
    def add(self, labels: Labels, vectors: Vectors) -> None:
        vectors = check_vectors(vectors, self.dim)
        labels, vectors = last_wins(check_labels(labels, len(vectors)), vectors)
        if not len(labels):
            return
        if not self._graph.is_trained:  # empty: replaced by a graph trained on (a sample of) this batch
            pick = self._sample(len(vectors))
            self._graph = self._trained_graph(vectors[pick])
            self._trained_on = len(pick)
        self._kill(self._lookup(labels))
        slots = self.vectors.append(vectors)
        start = self._graph.ntotal
        self._graph.add(vectors)
        new_ids = np.arange(start, start + len(labels), dtype=np.int64)
        self._reserve(self._graph.ntotal + 1)  # one free slot: _label_of[-1] == -1 maps padding
        self._label_of[new_ids] = labels
        self._slot_of[new_ids] = slots
        self._map(labels, new_ids)
        self._maybe_compact()
        if self.spill is not None and self.vectors.unsaved >= self.spill_rows:
            self.spill(self.vectors)

    def _reserve(self, n: int) -> None:
        super()._reserve(n)
        if len(self._slot_of) < len(self._label_of):
            grown = np.full(len(self._label_of), -1, dtype=np.int64)
            grown[: len(self._slot_of)] = self._slot_of
            self._slot_of = grown

    def _maybe_compact(self) -> None:
        undertrained = self._trained_on < self.train_size and len(self) >= 2 * max(self._trained_on, 1)
        if undertrained or (self._dead and self._dead > self.options["compact_ratio"] * self._graph.ntotal):
            self.compact()

    def compact(self) -> None:
        """Rebuild the graph from the live full vectors, with the quantizer retrained on them."""
        live = np.flatnonzero(self._label_of[: self._graph.ntotal] >= 0)
        slots = self._slot_of[live]
        graph = self._new_graph()
        if len(live):
            pick = self._sample(len(live))
            graph = self._trained_graph(self.vectors.take(slots[pick]))
            self._trained_on = len(pick)
            for start in range(0, len(live), 65536):
                graph.add(self.vectors.take(slots[start : start + 65536]))
        else:
            self._trained_on = 0
        remap = np.full(self._graph.ntotal, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        label_of = np.full(len(live) + 1024, -1, dtype=np.int64)
        label_of[: len(live)] = self._label_of[live]
        slot_of = np.full(len(label_of), -1, dtype=np.int64)
        slot_of[: len(live)] = slots
        self._graph, self._label_of, self._slot_of, self._ids = graph, label_of, slot_of, remap[self._ids]
        self._dead, self._live_bits = 0, None

    def export(self, chunk: int = 65536) -> Any:
        """Yield (labels, full vectors) chunks of every live entry."""
        for start in range(0, len(self._ids), chunk):
            ids = self._ids[start : start + chunk]
            yield self._keys[start : start + chunk].copy(), self.vectors.take(self._slot_of[ids])

    # -- search -----------------------------------------------------------------------------------------
    def search(self, queries: Vectors, k: int, allowed: Labels | None = None) -> tuple[Labels, Scores]:
        """The graph's (or the scan's) ``rescore * k`` best candidates by their codes, ranked again by
        their exact scores; ``-1`` / ``-inf`` pad missing hits."""
        queries = self._check_queries(queries)
        k = check_k(k)
        depth = max(k, min(k * self.rescore, k + MAX_EXTRA))
        if not self._graph.is_trained:  # nothing added yet
            return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), -np.inf, np.float32)
        candidates, _ = super().search(queries, depth, allowed)
        return self._rescore(queries, candidates, k)

    def _rescore(self, queries: Vectors, candidates: Labels, k: int) -> tuple[Labels, Scores]:
        valid = candidates >= 0
        ids = self._lookup(candidates[valid])
        full = self.vectors.take(self._slot_of[ids])
        owner = np.repeat(np.arange(len(queries)), valid.sum(axis=1))
        scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
        scores[valid] = np.einsum("ij,ij->i", full, queries[owner])
        order = np.lexsort((candidates, -scores))[:, :k]  # best first, ties to the lower label
        labels = np.take_along_axis(candidates, order, axis=1)
        best = np.take_along_axis(scores, order, axis=1)
        return labels, best

    # -- persistence ------------------------------------------------------------------------------------
    def _save_more(self, directory: Path) -> dict[str, Any]:
        """Beside the graph, labels and manifest of :meth:`HNSWIndex.save`: the slots and the vector parts."""
        described = self.vectors.save(directory, self._slot_of[self._ids])
        np.save(directory / SLOTS_FILE, self._slot_of[: self._graph.ntotal])
        return {"trained_on": self._trained_on, "code_size": self._code_size(), "vectors": described}

    def _code_size(self) -> int:
        return int(self._faiss.downcast_index(self._graph.storage).code_size)

    def attach(self, directory: Path) -> None:
        """Read the full vectors from ``directory`` (where the last save's folder now is), freeing the
        vectors held in memory since the save before."""
        self.vectors.attach(directory)

    def _restore(self, directory: Path, manifest: dict[str, Any], graph: Any, label_of: np.ndarray) -> None:
        super()._restore(directory, manifest, graph, label_of)
        try:
            slot_of = np.load(directory / SLOTS_FILE, allow_pickle=False)
            trained_on = int(manifest["trained_on"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"{directory}: unreadable slots ({exc}); {REBUILD}") from exc
        if slot_of.dtype != np.int64 or slot_of.shape != (graph.ntotal,):
            raise StorageError(f"{directory}: the slots do not match the graph; {REBUILD}")
        self.vectors = VectorFile.load(directory, manifest.get("vectors"), self.dim)
        if not self.vectors.covers(slot_of[self._ids]):
            raise StorageError(f"{directory}: a live vector's full-precision row is missing; {REBUILD}")
        self._slot_of = np.full(len(self._label_of), -1, dtype=np.int64)
        self._slot_of[: len(slot_of)] = slot_of
        self._trained_on = trained_on

    def _is_graph(self, graph: Any) -> bool:
        return isinstance(graph, self._faiss.IndexHNSWSQ) and graph.d == self.dim


__all__ = ["GRAPH_FILE", "QUANTIZERS", "QuantizedIndex"]
