"""The ``ivf`` layout of the quantized backend: inverted lists of scalar-quantized codes, rescored exactly.

FAISS ``IndexIVFScalarQuantizer`` (8-bit codes of each vector's residual to its list's centroid by
default: 384 bytes plus an 8-byte id in the lists for a 384-d vector, no graph) whose coarse quantizer
finds a vector's lists by comparing it with every centroid (``IndexFlatIP``: a matrix product per batch,
the cheapest at a few thousand lists) or, with ``coarse: hnsw``, by a walk over an HNSW graph of the
centroids (``IndexHNSWFlat``: cheaper only for tens of thousands of lists; six times dearer per vector at
4,096, measured). Building is k-means once (assigning by matrix products), on a seeded sample of
``train_size`` vectors (spherical, ``kmeans_iters`` iterations), then an assignment and an encoding per
vector: far cheaper than inserting every vector into a graph, which is what makes 10M vectors buildable
on two cores. A search probes the ``nprobe`` lists nearest to the query and rescores ``rescore`` x k
candidates from the float32 vectors memory-mapped from disk, as the ``hnsw`` layout does
(:class:`~xmodal.index.quantized.QuantizedIndex`, whose writes, tombstones, compaction, spilling and
checkpoints this class keeps).

While the index is smaller than ``39 x nlist`` vectors when it is trained (k-means wants ~39 vectors per
centroid), it gets fewer lists (``len // 39``, at least one) and is retrained, lists and codes, each time
it doubles until it was trained on ``train_size`` vectors.

``kmeans_iters: 0`` skips k-means: the centroids are ``nlist`` vectors of the training sample (a seeded
draw, at least 4 sample vectors per list: ``len // 4`` lists while fewer), the only cheap way to the tens of
thousands of small lists the "IVF-HNSW" recipe gives large sets (k-means with 65k centroids on a 39x sample
is ~1e14 flops per iteration: hours on two cores); with ``coarse: hnsw`` a vector's list is then found by a
walk over the centroids' graph. For sets whose vectors come in clusters of near-copies: with a few times more
lists than clusters, most clusters draw a centroid of their own and their copies share its list (WordNet
vectors with ~85 noisy copies per text: recall@10 0.97-0.98 at nprobe 256-512; with ~8.5 copies per text the
lists needed cost more memory than a graph: docs/benchmarks.md, issue 18).

Filtered search keeps the same plan and guarantees: a walk restricted to the allowed ids (an ID selector,
``nprobe`` raised by ``live / allowed``, at most 16x), topped up by an exact scan when it comes back
short; few allowed ids go straight to the scan, which reads every list's codes with the selector (so it
finds all allowed vectors, whichever list holds them): k hits whenever k allowed vectors are present,
never one that is not allowed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..vectormath import normalize
from .base import Vectors
from .quantized import OWN_DEFAULTS, QuantizedIndex

#: ``nlist``: inverted lists (k-means centroids) once trained on enough vectors; ``nprobe``: lists a search
#: reads; ``kmeans_iters``: k-means iterations. 4096 lists hold ~2,400 vectors each at 10M (nprobe 32 reads
#: ~78k codes per query) and k-means on 200k x 4096 stays within minutes on two cores (docs/benchmarks.md).
IVF_DEFAULTS: dict[str, Any] = {"nlist": 4096, "nprobe": 32, "kmeans_iters": 10, "coarse": "flat", "coarse_ef": 64}
#: ``coarse``: how a vector finds its list. ``flat`` compares it with every centroid (one matrix product per
#: batch: ~35 us of CPU per vector at 4,096 lists, measured); ``hnsw`` walks a graph over the centroids
#: (~220 us per vector at 4,096 lists, efSearch 64: it pays only for far more lists, ~64k and up).
COARSE = ("flat", "hnsw")
#: The ``ivf`` layout's own defaults: a larger training sample (k-means wants ~39 per centroid) and
#: rescore 20: the lists, not the codes, bound this layout's recall (the same at rescore 10 and 20 on the
#: real set), and every extra candidate is a full vector read from disk (docs/benchmarks.md).
IVF_OWN_DEFAULTS: dict[str, Any] = {**OWN_DEFAULTS, "train_size": 200_000, "rescore": 20}
#: The HNSW-layout graph options, refused here (the ivf layout has no graph over the vectors).
GRAPH_ONLY = ("m", "ef_construction", "ef_search", "fill_links")
PER_LIST = 39
#: Sample vectors per list when the centroids are drawn from the sample (``kmeans_iters: 0``).
SAMPLED_PER_LIST = 4
#: The ``hnsw`` coarse quantizer: a graph over the centroids (M, efConstruction, efSearch of an assignment).
#: A search walks it with efSearch ``max(coarse_ef, nprobe)`` (option ``coarse_ef``, 64 by default): FAISS
#: does not raise efSearch to the k asked for (efSearch 64 returned ~1,140 of 2,048 lists asked for), which
#: capped recall whatever the nprobe; and over centroids that are near-copies of each other (lists drawn
#: from a set of near-duplicates) a walk wider than nprobe finds the nearest lists far better
#: (docs/benchmarks.md, issue 18).
COARSE_M, COARSE_EF_CONSTRUCTION, COARSE_EF_SEARCH = 32, 80, 64


def check_ivf(given: dict[str, Any]) -> dict[str, Any]:
    options = {**IVF_DEFAULTS, **given}
    if options["coarse"] not in COARSE:
        raise ConfigError(f"quantized ivf option coarse must be one of {list(COARSE)}, got {options['coarse']!r}")
    for name in ("nlist", "nprobe", "kmeans_iters", "coarse_ef"):
        value, least = options[name], 0 if name == "kmeans_iters" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a non-negative" if least == 0 else "a positive"
            raise ConfigError(f"quantized ivf option {name} must be {kind} integer, got {value!r}")
    return options


class QuantizedIVFIndex(QuantizedIndex):
    """FAISS ``IndexIVFScalarQuantizer`` (inner product, HNSW coarse quantizer) for candidates, full vectors
    on disk for exact scores."""

    kind = "quantized-ivf"

    def __init__(self, dim: int, **options: Any) -> None:
        graph_only = sorted(set(options) & set(GRAPH_ONLY))
        if graph_only:
            raise ConfigError(
                f"quantized index option(s) {graph_only} belong to the hnsw layout; the ivf layout takes "
                f"nlist, nprobe, kmeans_iters, coarse and coarse_ef instead"
            )
        ivf = check_ivf({name: options.pop(name) for name in list(options) if name in IVF_DEFAULTS})
        self._nlist, self._nprobe, self._iters = int(ivf["nlist"]), int(ivf["nprobe"]), int(ivf["kmeans_iters"])
        self._coarse, self._coarse_ef = str(ivf["coarse"]), int(ivf["coarse_ef"])
        options = {name: IVF_OWN_DEFAULTS[name] for name in ("train_size", "rescore")} | options
        super().__init__(dim, **options)
        for name in GRAPH_ONLY:
            self.options.pop(name, None)
        self.options.update(ivf)
        self._ef = 0  # HNSWIndex.search's shortcut (FAISS's own search when k <= efSearch) never taken:
        # every search goes through _walk, which gives the HNSW coarse walk an efSearch of nprobe
        self._centroids: np.ndarray | None = None

    def _new_graph(self, nlist: int | None = None) -> Any:
        if not hasattr(self, "_qtype"):  # HNSWIndex.__init__ asks before the quantizer is known
            return None
        faiss = self._faiss
        if self._coarse == "hnsw":
            coarse = faiss.IndexHNSWFlat(self.dim, COARSE_M, faiss.METRIC_INNER_PRODUCT)
            coarse.hnsw.efConstruction = COARSE_EF_CONSTRUCTION
            coarse.hnsw.efSearch = COARSE_EF_SEARCH  # an assignment's; a search gives its own (_walk)
        else:
            coarse = faiss.IndexFlatIP(self.dim)
        graph = faiss.IndexIVFScalarQuantizer(
            coarse, self.dim, nlist or self._nlist, self._qtype, faiss.METRIC_INNER_PRODUCT
        )
        graph.own_fields = True  # the IVF index frees its quantizer ...
        coarse.this.disown()  # ... so Python must not
        graph.cp.niter = self._iters
        graph.cp.spherical = True  # unit vectors, inner product: centroids renormalised
        graph.cp.max_points_per_centroid = 1 << 30  # the sample is ours (seeded, train_size): no resampling
        graph.cp.min_points_per_centroid = 1  # a small index gets fewer lists, not FAISS's warning
        graph.nprobe = self._nprobe
        self._centroids = None
        return graph

    def _trained_graph(self, sample: Vectors) -> Any:
        """A new graph with as many lists as the sample allows (``len // 39``, at most ``nlist``), its
        k-means and its scalar quantizer trained on the sample; without k-means (``kmeans_iters`` 0), a
        seeded draw of ``len // 4`` (at most ``nlist``) sample vectors as the centroids."""
        if self._iters == 0:
            graph = self._new_graph(max(1, min(self._nlist, len(sample) // SAMPLED_PER_LIST)))
            pick = np.sort(np.random.default_rng(1).choice(len(sample), graph.nlist, replace=False))
            graph.quantizer.add(np.ascontiguousarray(normalize(np.asarray(sample)[pick])))
            self._train(graph, sample)  # FAISS skips k-means: the quantizer already holds nlist centroids
            return graph
        graph = self._new_graph(max(1, min(self._nlist, len(sample) // PER_LIST)))
        flat = self._faiss.IndexFlatIP(self.dim)
        graph.clustering_index = flat  # k-means assigns by matrix products, whatever the coarse quantizer
        try:
            self._train(graph, sample)
        finally:
            graph.clustering_index = None
        return graph

    @property
    def nlist(self) -> int:
        """Lists of the trained index (fewer than the option while it was trained on few vectors)."""
        return int(self._graph.nlist)

    def tune(
        self,
        *,
        ef_search: int | None = None,
        rescore: int | None = None,
        nprobe: int | None = None,
        coarse_ef: int | None = None,
    ) -> None:
        """Change the search-time settings of this open index (a benchmark's sweep; not saved)."""
        if ef_search is not None:
            raise ConfigError("the ivf layout has no efSearch: tune nprobe")
        if coarse_ef is not None:
            self._coarse_ef = int(coarse_ef)
        if nprobe is not None:
            self._nprobe = self._graph.nprobe = int(nprobe)
        if rescore is not None:
            self.rescore = int(rescore)

    # -- search -----------------------------------------------------------------------------------------
    def _walk(self, queries: Vectors, k: int, sel: Any, widen: float) -> tuple[np.ndarray, np.ndarray]:
        """Probe the ``nprobe`` nearest lists (more, up to 16x, when a selector leaves few vectors)."""
        nprobe = min(int(math.ceil(self._nprobe * widen)), 16 * self._nprobe, self._graph.nlist)
        params = self._faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        if self._coarse == "hnsw":  # the walk over the centroids must return nprobe of them
            coarse = self._faiss.SearchParametersHNSW(efSearch=max(self._coarse_ef, nprobe))
            params.quantizer_params = coarse  # ``coarse`` stays referenced until the search returns
        return self._graph.search(queries, k, params=params)  # type: ignore[no-any-return]

    def _scan(self, queries: Vectors, k: int, sel: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the selected vectors' codes: every list read, the selector checked per entry
        (the lists given directly, with the query's inner product with each centroid)."""
        centroids = self._centroid_matrix()
        coarse = np.ascontiguousarray(queries @ centroids.T, dtype=np.float32)
        lists = np.ascontiguousarray(np.broadcast_to(np.arange(len(centroids), dtype=np.int64), coarse.shape))
        params = self._faiss.SearchParametersIVF(nprobe=len(centroids), sel=sel)
        dist = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        ptr = self._faiss.swig_ptr
        threads = self._faiss.omp_get_max_threads()
        if len(queries) == 1:
            self._faiss.omp_set_num_threads(1)  # as HNSWIndex._scan: one query, one thread
        try:
            self._graph.search_preassigned_c(
                len(queries), ptr(queries), k, ptr(lists), ptr(coarse), ptr(dist), ptr(ids), False, params
            )
        finally:
            self._faiss.omp_set_num_threads(threads)
        return dist, ids

    def _centroid_matrix(self) -> np.ndarray:
        if self._centroids is None or len(self._centroids) != self._graph.nlist:
            quantizer = self._faiss.downcast_index(self._graph.quantizer)
            self._centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
        return self._centroids

    # -- persistence ------------------------------------------------------------------------------------
    def _code_size(self) -> int:
        return int(self._graph.code_size)

    def _save_more(self, directory: Any) -> dict[str, Any]:
        return {**super()._save_more(directory), "lists": self.nlist}

    def _set_search(self, graph: Any) -> None:
        graph.nprobe = self._nprobe
        self._centroids = None

    def _is_graph(self, graph: Any) -> bool:
        if not isinstance(graph, self._faiss.IndexIVFScalarQuantizer) or graph.d != self.dim:
            return False
        coarse = self._faiss.downcast_index(graph.quantizer)
        return isinstance(coarse, self._faiss.IndexHNSWFlat if self._coarse == "hnsw" else self._faiss.IndexFlatIP)


__all__ = ["IVF_DEFAULTS", "QuantizedIVFIndex"]
