"""The ``quantized`` backend: the ``local`` backend with compressed vectors in memory, for large catalogs.

Each vector kind is a :class:`~xmodal.index.quantized.QuantizedIndex`: an HNSW graph over 8-bit scalar codes
in memory (FAISS ``IndexHNSWSQ``; about 560 bytes per 384-d vector against ~1,880 for HNSW over float32), or
with the ``ivf`` layout a :class:`~xmodal.index.quantized_ivf.QuantizedIVFIndex` (inverted lists of 8-bit
codes, ~430 bytes per vector), and the float32 vectors in ``.npy`` parts beside the checkpoint,
memory-mapped, from which every search rescores its candidates exactly. Everything else is
:class:`~xmodal.backends.local.LocalBackend`'s: filters resolve to allowed rows through the engine's
attribute table and are applied before the top-k cut (k hits whenever k rows match, never a row that does
not), the checkpoint is a folder with ``state.json`` (the store sequence it reflects, the configuration and
the kinds present) swapped in atomically, and a missing, corrupt or foreign checkpoint starts empty
(``saved_seq`` 0: rebuilt from the store).

A checkpoint writes the vectors added since the previous one as a new part and hard-links the older parts
(no copy); until then they are held in memory, up to ``spill_rows`` per kind, then written as a part into
the live checkpoint's folder (not yet named by its manifest) and memory-mapped from there.

Options (``index_options``; ``Engine.open(path, backend="quantized", index_options={...})``): ``layout``
(``hnsw``, the default, or ``ivf``); for the ``hnsw`` layout the HNSW ones (``m`` 16, ``ef_construction`` 120,
``ef_search`` 256) and ``fill_links`` (false: bottom-layer link lists filled up with the nearest candidates
the pruning dropped, FAISS ``keep_max_size_level0``); for the ``ivf`` layout
(:mod:`xmodal.index.quantized_ivf`: inverted lists of codes under their k-means centroids, no graph over the
vectors, so 10M vectors build in minutes, not hours) ``nlist`` (4,096), ``nprobe`` (32), ``kmeans_iters`` (10;
0: centroids drawn from the sample, no k-means), ``coarse`` (``flat``, or ``hnsw``: a graph over the
centroids) and ``coarse_ef`` (64: that graph's efSearch in a search, at least ``nprobe``); for both
``exact_max``, ``exact_fraction``, ``compact_ratio``, ``quantizer`` (``sq8``, ``sq6``, ``sq4``, ``fp16``),
``rescore`` (candidates read per hit: 40 for ``hnsw``, 20 for ``ivf``), ``train_size`` (20,000 for ``hnsw``,
200,000 for ``ivf``: its k-means sample) and ``spill_rows`` (65,536). The layout is part of the configuration a
checkpoint records: another layout rebuilds from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..index.base import VectorIndex
from ..index.quantized import QuantizedIndex
from ..index.vector_file import VectorFile
from ..store.files import folder_lock
from .base import BackendContext
from .local import LocalBackend

#: The index-kind settings this backend accepts: its own index is the only one it builds.
INDEX_KINDS = ("auto", "quantized")
#: ``layout``: ``hnsw`` (the default: a graph over the codes) or ``ivf`` (inverted lists of codes).
LAYOUTS = ("hnsw", "ivf")


class QuantizedBackend(LocalBackend):
    """Per-kind HNSW (or IVF) over scalar-quantized codes, rescored from full vectors memory-mapped from disk."""

    name = "quantized"

    def __init__(self, context: BackendContext) -> None:
        if context.index_kind not in INDEX_KINDS:
            raise ConfigError(
                f"the quantized backend builds its own index (HNSW over scalar-quantized vectors), not "
                f"{context.index_kind!r}: leave the index kind at 'auto' and set its options instead"
            )
        super().__init__(context)

    @classmethod
    def open(cls, context: BackendContext) -> QuantizedBackend:
        backend = super().open(context)
        assert isinstance(backend, QuantizedBackend)
        return backend

    def checkpoint(self, seq: int) -> bool:
        """:meth:`LocalBackend.checkpoint`, then every index reads its full vectors from the new folder
        (the vectors it held in memory since the last checkpoint are now a part on disk)."""
        saved = super().checkpoint(seq)
        if saved:
            for kind, index in self.indexes.items():
                if isinstance(index, QuantizedIndex):
                    index.attach(self._folder / kind)
        return saved

    def config(self) -> dict[str, Any]:
        return {**super().config(), "backend": self.name}

    def _layout(self) -> type[QuantizedIndex]:
        layout = self.index_options.get("layout", "hnsw")
        if layout not in LAYOUTS:
            raise ConfigError(f"quantized backend option layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        if layout == "hnsw":
            return QuantizedIndex
        from ..index.quantized_ivf import QuantizedIVFIndex

        return QuantizedIVFIndex

    def _new_index(self) -> VectorIndex:
        options = {name: value for name, value in self.index_options.items() if name != "layout"}
        return self._layout()(self._dim, **options)

    def _load_index(self, directory: Path) -> VectorIndex:
        index = self._layout().load(directory)
        assert isinstance(index, QuantizedIndex)
        index.spill = self._spiller(directory.name)
        return index

    def _index(self, kind: str) -> VectorIndex:
        index = super()._index(kind)
        assert isinstance(index, QuantizedIndex)
        index.spill = self._spiller(kind)
        return index

    def _spiller(self, kind: str) -> Callable[[VectorFile], None]:
        """Writes a kind's rows not yet checkpointed into the live checkpoint's folder of that kind, under
        the folder lock (never while another process swaps the checkpoint)."""

        def spill(vectors: VectorFile) -> None:
            self._folder.parent.mkdir(parents=True, exist_ok=True)
            with folder_lock(self._folder.parent):
                vectors.spill(self._folder / kind)

        return spill


if TYPE_CHECKING:  # the registry loads it lazily: check the protocols statically here
    from .base import BackendFactory

    _FACTORY: BackendFactory = QuantizedBackend
