"""FAISS HNSW index with tombstoned deletes and a per-query plan for filtered search.

The graph is HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
using Hierarchical Navigable Small World graphs", TPAMI 2018) from FAISS (``IndexHNSWFlat``, inner
product on L2-normalised vectors). HNSW cannot delete, so a removed or replaced vector becomes a
*tombstone*: its internal id is excluded from every search by a bitmap selector, and the graph is
rebuilt from the live vectors once tombstones pass ``compact_ratio`` of it.

Filtered search. Restricting the graph walk to allowed nodes breaks down when few nodes are allowed
(the walk cannot reach them: FAISS's own filtered HNSW reaches ~0.7 recall@10 with a 5% filter), a
failure described e.g. in ACORN (Patel et al., SIGMOD 2024). So each search is planned from the
number ``m`` of allowed live vectors, as in the pre-filter / brute-force switch of filtered ANN
systems: when ``m <= exact_max`` or ``m < exact_fraction`` of the index, an exact scan of just the
allowed vectors (read in place from FAISS's storage); otherwise the HNSW walk with the allowed set as
a selector and ``efSearch`` raised by ``live / m``; a query that still comes back with fewer than
``k`` hits is answered by the exact scan.

Opening maps the graph's flat vectors from its file (FAISS's ``IO_FLAG_MMAP_IFC``) instead of reading them
(100k 384-d vectors: ~0.02 s against ~0.12 s), so a process that only searches reads just the pages its
searches touch. A mapped graph cannot grow: the first write reads the graph into memory from the file it was
mapped from (kept open, so a checkpoint written since by another process changes nothing: checkpoints are new
folders renamed over the old one, never a file rewritten in place).
"""

from __future__ import annotations

import json
import math
import weakref
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from ..errors import ConfigError, MissingDependency, StorageError, ValidationError
from .base import FORMAT_VERSION, MANIFEST, Labels, Scores, Vectors, check_k, check_vectors
from .exact import read_manifest

GRAPH_FILE = "hnsw.faiss"
LABELS_FILE = "labels.npy"
#: Defaults: M=32 and efConstruction=200 give recall@10 >= 0.98 with efSearch=128 on 100k
#: MiniLM embeddings (docs/benchmarks/search.md); exact scans of up to 20k vectors cost ~1-3 ms.
DEFAULTS: dict[str, Any] = {
    "m": 32,
    "ef_construction": 200,
    "ef_search": 128,
    "exact_max": 20_000,
    "exact_fraction": 0.1,
    "compact_ratio": 0.25,
}


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependency("faiss-cpu", "ann") from exc
    return faiss


def check_labels(labels: object, n: int) -> Labels:
    """Non-negative int64 labels, one per vector (``-1`` is the padding label)."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n or (len(arr) and not np.issubdtype(arr.dtype, np.integer)):
        raise ValidationError("labels", f"must be {n} integers, got shape {arr.shape}", "pass one int label per vector")
    arr = arr.astype(np.int64, copy=False)
    if len(arr) and arr.min() < 0:
        raise ValidationError("labels", "must be non-negative (-1 marks padding)", "use the engine's row numbers")
    return arr


def last_wins(labels: Labels, vectors: Vectors) -> tuple[Labels, Vectors]:
    """Drop all but the last occurrence of each label in a batch (upsert order)."""
    uniq, first_in_reversed = np.unique(labels[::-1], return_index=True)
    if len(uniq) == len(labels):
        return labels, vectors
    keep = np.sort(len(labels) - 1 - first_in_reversed)
    return labels[keep], vectors[keep]


class HNSWIndex:
    """FAISS ``IndexHNSWFlat`` (inner product) over int64 labels, with tombstones and filter planning."""

    kind = "hnsw"
    #: Whether :meth:`load` maps the graph's flat vectors from the file (see the module's docstring).
    MAPPED: ClassVar[bool] = True

    def __init__(self, dim: int, **options: Any) -> None:
        self.options = check_options(options)
        self.dim = int(dim)
        self._faiss = _faiss()
        self._graph = self._new_graph()
        self._mapped_from: IO[bytes] | None = None  # the file a mapped graph was read from (None: in memory)
        self._label_of = np.full(1024, -1, dtype=np.int64)  # internal id -> label; -1 = tombstone or free
        self._keys = np.empty(0, dtype=np.int64)  # sorted live labels ...
        self._ids = np.empty(0, dtype=np.int64)  # ... and their internal ids
        self._dead = 0
        self._live_bits: np.ndarray | None = None

    def _new_graph(self) -> Any:
        graph = self._faiss.IndexHNSWFlat(self.dim, int(self.options["m"]), self._faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = int(self.options["ef_construction"])
        graph.hnsw.efSearch = self._ef = int(self.options["ef_search"])
        return graph

    def __len__(self) -> int:
        return len(self._keys)

    def labels(self) -> Labels:
        return self._keys.copy()

    @property
    def tombstones(self) -> int:
        """Internal ids that are removed or replaced but still in the graph."""
        return self._dead

    # -- writes -------------------------------------------------------------------------------------
    def add(self, labels: Labels, vectors: Vectors) -> None:
        vectors = check_vectors(vectors, self.dim)
        labels, vectors = last_wins(check_labels(labels, len(vectors)), vectors)
        if not len(labels):
            return
        self._own_graph()
        self._kill(self._lookup(labels))
        start = self._graph.ntotal
        self._graph.add(vectors)
        new_ids = np.arange(start, start + len(labels), dtype=np.int64)
        self._reserve(self._graph.ntotal + 1)  # keep one free slot: _label_of[-1] == -1 maps padding
        self._label_of[new_ids] = labels
        self._map(labels, new_ids)
        self._maybe_compact()

    def remove(self, labels: Labels) -> int:
        labels = np.unique(np.asarray(labels, dtype=np.int64))
        if not len(labels) or not len(self._keys):
            return 0
        pos, present = self._find(labels)
        hit = pos[present]
        self._kill(self._ids[hit])
        self._keys, self._ids = np.delete(self._keys, hit), np.delete(self._ids, hit)
        self._maybe_compact()
        return len(hit)

    def _find(self, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
        """Insertion positions of labels in the sorted keys, and whether each is present there."""
        pos = np.searchsorted(self._keys, labels)
        if not len(self._keys):
            return pos, np.zeros(len(labels), dtype=bool)
        return pos, self._keys[np.minimum(pos, len(self._keys) - 1)] == labels

    def _lookup(self, labels: Labels) -> np.ndarray:
        """Internal ids of labels, ``-1`` for absent ones."""
        if not len(self._ids):
            return np.full(len(labels), -1, dtype=np.int64)
        pos, present = self._find(labels)
        return np.where(present, self._ids[np.minimum(pos, len(self._ids) - 1)], -1)

    def _kill(self, ids: np.ndarray) -> None:
        ids = ids[ids >= 0]
        if len(ids):
            self._label_of[ids] = -1
            self._dead += len(ids)
            self._live_bits = None

    def _map(self, labels: Labels, ids: np.ndarray) -> None:
        """Point labels at new internal ids: replace present keys in place, insert the others."""
        order = np.argsort(labels, kind="stable")
        labels, ids = labels[order], ids[order]
        pos, present = self._find(labels)
        self._ids[pos[present]] = ids[present]
        fresh = ~present
        self._keys = np.insert(self._keys, pos[fresh], labels[fresh])
        self._ids = np.insert(self._ids, pos[fresh], ids[fresh])
        self._live_bits = None

    def _reserve(self, n: int) -> None:
        if n >= len(self._label_of):
            grown = np.full(max(n + 1, 2 * len(self._label_of)), -1, dtype=np.int64)
            grown[: len(self._label_of)] = self._label_of
            self._label_of = grown

    def _own_graph(self) -> None:
        """Read a mapped graph into memory (before its first write: FAISS cannot add to mapped vectors)."""
        source = self._mapped_from
        if source is not None:
            source.seek(0)
            graph = self._faiss.read_index(self._faiss.PyCallbackIOReader(source.read))
            self._set_search(graph)
            self._graph, self._mapped_from = graph, None
            source.close()

    def _maybe_compact(self) -> None:
        if self._dead and self._dead > self.options["compact_ratio"] * self._graph.ntotal:
            self.compact()

    def compact(self) -> None:
        """Rebuild the graph from the live vectors (drops every tombstone)."""
        live = np.flatnonzero(self._label_of[: self._graph.ntotal] >= 0)
        graph = self._new_graph()
        for start in range(0, len(live), 65536):
            graph.add(self._graph.reconstruct_batch(live[start : start + 65536]))
        remap = np.full(self._graph.ntotal, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        label_of = np.full(len(live) + 1024, -1, dtype=np.int64)
        label_of[: len(live)] = self._label_of[live]
        self._graph, self._label_of, self._ids = graph, label_of, remap[self._ids]
        self._dead, self._live_bits = 0, None
        if self._mapped_from is not None:  # the new graph is in memory: the mapped one's file is not needed
            self._mapped_from.close()
            self._mapped_from = None

    def export(self, chunk: int = 65536) -> Any:
        """Yield (labels, vectors) chunks of every live entry (used to move to another index)."""
        for start in range(0, len(self._ids), chunk):
            ids = self._ids[start : start + chunk]
            yield self._keys[start : start + chunk].copy(), self._graph.reconstruct_batch(ids)

    # -- search -------------------------------------------------------------------------------------
    def search(self, queries: Vectors, k: int, allowed: Labels | None = None) -> tuple[Labels, Scores]:
        queries = self._check_queries(queries)
        k = check_k(k)
        if allowed is None and not self._dead:  # the hot path: a handful of cheap checks around FAISS
            if k <= self._ef:
                dist, ids = self._graph.search(queries, k)
            else:
                dist, ids = self._walk(queries, k, None, 1.0)
            return self._finish(queries, k, dist, ids, len(self._keys), None)
        ids = self._ids if allowed is None else self._allowed_ids(allowed)
        return self._planned(queries, k, ids)

    def _planned(self, queries: Vectors, k: int, ids: np.ndarray) -> tuple[Labels, Scores]:
        """Exact scan of ``ids`` when they are few, else a selector-restricted walk."""
        m = len(ids)
        sel, bits = self._selector(ids)
        if m <= max(k, self.options["exact_max"]) or m < self.options["exact_fraction"] * len(self._keys):
            dist, found = self._scan(queries, k, sel)
            return self._finish(queries, k, dist, found, m, None)
        dist, found = self._walk(queries, k, sel, len(self._keys) / m)
        del bits  # the selector reads this buffer: keep it alive until the walk is done
        return self._finish(queries, k, dist, found, m, ids)

    def _scan(self, queries: Vectors, k: int, sel: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the selected vectors, read in place from the graph's flat storage.

        One query runs on one thread: FAISS's OpenMP fork/join costs more than it saves on a scan
        of a few thousand vectors, and on a busy machine it costs ~3x (docs/benchmarks/search.md).
        """
        params = self._faiss.SearchParameters(sel=sel)
        if len(queries) != 1:
            return self._graph.storage.search(queries, k, params=params)  # type: ignore[no-any-return]
        threads = self._faiss.omp_get_max_threads()
        self._faiss.omp_set_num_threads(1)  # an OpenMP setting of the calling thread only
        try:
            return self._graph.storage.search(queries, k, params=params)  # type: ignore[no-any-return]
        finally:
            self._faiss.omp_set_num_threads(threads)

    def _check_queries(self, queries: Vectors) -> Vectors:
        """``check_vectors`` with a fast path for the common case (one numpy call, ~1 us)."""
        if (
            isinstance(queries, np.ndarray)
            and queries.dtype == np.float32
            and queries.ndim == 2
            and queries.shape[1] == self.dim
            and queries.flags.c_contiguous
            and math.isfinite(queries.sum(dtype=np.float64))  # NaN or inf anywhere makes the sum so
        ):
            return queries
        return check_vectors(queries, self.dim, "query vectors")

    def _walk(self, queries: Vectors, k: int, sel: Any, widen: float) -> tuple[np.ndarray, np.ndarray]:
        ef = max(self._ef, k)
        ef = min(int(math.ceil(ef * widen)), 16 * ef)
        return self._graph.search(queries, k, params=self._faiss.SearchParametersHNSW(efSearch=ef, sel=sel))  # type: ignore[no-any-return]

    def _finish(
        self, queries: Vectors, k: int, dist: np.ndarray, ids: np.ndarray, m: int, subset: np.ndarray | None
    ) -> tuple[Labels, Scores]:
        """Map internal ids to labels (``-1`` maps to the free last slot), pad scores with -inf."""
        need = min(k, m)
        if need and (ids[0, need - 1] < 0 if len(ids) == 1 else (ids[:, need - 1] < 0).any()):
            short = np.flatnonzero(ids[:, need - 1] < 0)  # the walk came back short: top up exactly
            exact_ids = self._ids if subset is None else subset
            sel, bits = self._selector(exact_ids)
            d2, i2 = self._scan(queries[short], k, sel)
            del bits
            dist, ids = dist.copy(), ids.copy()
            dist[short], ids[short] = d2, i2
        labels = self._label_of[ids]
        if need < k:
            dist = np.where(ids < 0, np.float32(-np.inf), dist).astype(np.float32, copy=False)
        return labels, dist

    def _allowed_ids(self, allowed: Labels) -> np.ndarray:
        """Internal ids of the allowed labels that are live."""
        allowed = np.asarray(allowed, dtype=np.int64)
        found = self._lookup(allowed) if len(allowed) else np.empty(0, dtype=np.int64)
        return found[found >= 0]

    def _selector(self, ids: np.ndarray) -> tuple[Any, np.ndarray]:
        """A FAISS bitmap selector over internal ids, and the buffer it reads (keep it alive)."""
        if ids is self._ids:
            if self._live_bits is None:
                self._live_bits = self._bitmap(ids)
            bits = self._live_bits
        else:
            bits = self._bitmap(ids)
        return self._faiss.IDSelectorBitmap(len(bits), self._faiss.swig_ptr(bits)), bits  # n is in bytes

    def _bitmap(self, ids: np.ndarray) -> np.ndarray:
        mask = np.zeros(max(self._graph.ntotal, 1), dtype=bool)
        mask[ids] = True
        return np.packbits(mask, bitorder="little")

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        more = self._save_more(directory)
        self._faiss.write_index(self._graph, str(directory / GRAPH_FILE))
        np.save(directory / LABELS_FILE, self._label_of[: self._graph.ntotal])
        manifest = {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "count": len(self),
            "ntotal": int(self._graph.ntotal),
            "tombstones": self._dead,
            "options": self.options,
            "faiss_version": self._faiss.__version__,
            **more,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))

    def _save_more(self, directory: Path) -> dict[str, Any]:
        """Write what a subclass keeps beside the graph; returns what its manifest adds (nothing here)."""
        return {}

    @classmethod
    def load(cls, directory: Path) -> HNSWIndex:
        manifest = read_manifest(directory, cls.kind)
        source = None
        try:
            index = cls(int(manifest["dim"]), **dict(manifest["options"]))  # type: ignore[call-overload]
            if cls.MAPPED:
                source = open(directory / GRAPH_FILE, "rb")  # noqa: SIM115 - kept open while the graph is mapped
                graph = index._faiss.read_index(str(directory / GRAPH_FILE), index._faiss.IO_FLAG_MMAP_IFC)
            else:
                graph = index._faiss.read_index(str(directory / GRAPH_FILE))
            label_of = np.load(directory / LABELS_FILE, allow_pickle=False)
            index._restore(directory, manifest, graph, label_of)
        except (KeyError, TypeError, ValueError, ConfigError, RuntimeError, OSError) as exc:
            if source is not None:
                source.close()
            raise StorageError(f"{directory}: unreadable hnsw index ({exc}); delete the folder to rebuild it") from exc
        except BaseException:
            if source is not None:
                source.close()
            raise
        if source is not None:
            index._mapped_from = source
            weakref.finalize(index, source.close)
        return index

    def _restore(self, directory: Path, manifest: dict[str, Any], graph: Any, label_of: np.ndarray) -> None:
        live = np.flatnonzero(label_of >= 0) if label_of.dtype == np.int64 and label_of.ndim == 1 else None
        problem = None
        keys = order = np.empty(0, dtype=np.int64)
        if live is not None:  # the live labels sorted once: for the check (no repeat) and for the index
            order = np.argsort(label_of[live], kind="stable")
            keys = label_of[live][order]
        if not self._is_graph(graph):
            problem = "the graph file is not an HNSW index of this dimension"
        elif live is None or graph.ntotal != len(label_of) or manifest.get("ntotal") != graph.ntotal:
            problem = "the labels do not match the graph"
        elif len(live) != manifest.get("count") or bool(np.any(keys[1:] == keys[:-1])):
            problem = "the live labels do not match the manifest"
        if problem or live is None:
            raise StorageError(f"{directory}: {problem}; delete the folder to rebuild it")
        self._set_search(graph)
        self._graph, self._keys, self._ids = graph, keys, live[order]
        self._label_of = np.full(len(label_of) + 1024, -1, dtype=np.int64)
        self._label_of[: len(label_of)] = label_of
        self._dead = int(graph.ntotal - len(live))

    def _set_search(self, graph: Any) -> None:
        """Give a loaded graph this index's search-time setting (its efSearch)."""
        graph.hnsw.efSearch = self._ef

    def _is_graph(self, graph: Any) -> bool:
        """Whether a loaded FAISS index is a graph this class reads (HNSW flat, of this dimension)."""
        return isinstance(graph, self._faiss.IndexHNSWFlat) and graph.d == self.dim


def check_options(given: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The HNSW options merged over :data:`DEFAULTS`, or a ConfigError naming the bad one."""
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        known = ", ".join([*extra, *sorted(DEFAULTS)])
        raise ConfigError(f"unknown hnsw index option(s) {sorted(unknown)}; known: {known}")
    options = {**DEFAULTS, **given}
    for name in ("m", "ef_construction", "ef_search", "exact_max"):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "exact_max" else 1):
            raise ConfigError(f"hnsw option {name} must be a positive integer, got {value!r}")
    for name in ("exact_fraction", "compact_ratio"):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"hnsw option {name} must be a number in [0, 1], got {value!r}")
    return options
