"""A trained generative index: quantizer + decoder + the trie of live IDs, saved as safetensors + JSON.

Layout of ``<index>/genret/``::

    manifest.json        format version, encoder config, dim, L, K, decoder config, training summary
    model.safetensors    codebooks and decoder weights (no pickle)
    trie.safetensors     rows and codes of the live items, with the store sequence they reflect
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..encoders import identity
from ..errors import ConfigError, MissingDependency, StorageError

try:
    import safetensors  # noqa: F401  (its torch and numpy halves are imported where models are saved and loaded)
    import torch
except ImportError as exc:  # the genret extra is not installed
    raise MissingDependency(exc.name or "torch", "genret") from exc

from ..records import Modality, modality_family
from ..store.files import write_dir
from .decoder import DecoderConfig, IDDecoder
from .fixes import TRAIN_FIX
from .quantizer import ResidualQuantizer
from .search import VectorFetch, beam_search, bucket_candidates, rerank
from .trie import CodeTrie

FORMAT_VERSION = 1
MODALITIES: tuple[Modality, ...] = tuple(Modality)
RERANK_POOL = 1_000  # GENIUS-R re-ranks every member of the generated buckets, at most this many

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def modality_code(modality: Modality | str) -> int:
    """First code of a semantic ID: the position of the modality's family (text, media, media+text; see
    :func:`~xmodal.records.modality_family`) among the declared :class:`Modality` members, so a model
    trained before open media keeps its codes and a new medium gets the code of its family."""
    return MODALITIES.index(modality_family(modality))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class GenerativeIndex:
    """Semantic IDs, the ID decoder and the trie; ``search`` returns rows and scores per query."""

    def __init__(
        self, quantizer: ResidualQuantizer, decoder: IDDecoder, meta: dict[str, Any], device: str | None = None
    ) -> None:
        self.device = device or default_device()
        self.quantizer = quantizer.to(self.device).eval()
        self.decoder = decoder.to(self.device).eval()
        self.meta = meta
        self.trie = CodeTrie(len(MODALITIES), quantizer.levels, quantizer.codebook_size)

    @property
    def dim(self) -> int:
        return self.quantizer.dim

    # -- IDs ----------------------------------------------------------------------------------
    def codes_for(self, vectors: FloatArray, modalities: Sequence[Modality | str] | IntArray) -> IntArray:
        """Full semantic IDs [n, L+1] of item embeddings with their modalities."""
        first = np.asarray(
            [m if isinstance(m, (int, np.integer)) else modality_code(m) for m in modalities], dtype=np.int64
        )
        rest = self.quantizer.encode(np.asarray(vectors, dtype=np.float32))
        return np.concatenate([first[:, None], rest], 1)

    def put(self, rows: IntArray, vectors: FloatArray, modalities: Sequence[Modality | str] | IntArray) -> None:
        """Give items their IDs from the trained quantizer and enter them into the trie (no retraining)."""
        if len(rows):
            self.trie.add(np.asarray(rows, np.int64), self.codes_for(vectors, modalities))

    def remove(self, rows: IntArray) -> int:
        return self.trie.remove(np.asarray(rows, np.int64))

    # -- search -------------------------------------------------------------------------------
    def generate(self, queries: FloatArray, beam: int, depth: int | None = None) -> tuple[IntArray, FloatArray]:
        """Constrained beam search: generated full keys (or prefixes of ``depth`` tokens) and
        log-probabilities per query."""
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if len(self.trie) == 0:
            return np.full((len(q), 0), -1, np.int64), np.empty((len(q), 0), np.float32)
        return beam_search(self.decoder, self.trie, torch.as_tensor(q, device=self.device), beam, depth)

    def search(
        self,
        queries: FloatArray,
        k: int,
        *,
        beam: int = 32,
        similarity: VectorFetch | None = None,
        pool: int | None = None,
        depth: int | None = None,
    ) -> list[tuple[IntArray, FloatArray]]:
        """Per query, up to ``k`` rows with scores: GENIUS (beam log-prob) or, with ``similarity``, GENIUS-R.

        GENIUS-R re-ranks by cosine every member of the ``beam`` generated buckets, in beam order, capped
        at ``pool`` candidates (default :data:`RERANK_POOL`): the cap bounds the cost when the embeddings
        collapse into a few large buckets; a bucket cut by the cap keeps its first rows.

        ``depth`` (1 ≤ depth ≤ ``levels + 1``; default the full ID) decodes only the first ``depth``
        tokens, and every item under each of the ``beam`` generated prefixes is a candidate: with
        ``depth=2`` (modality and level-1 code) GENIUS-R re-ranks whole level-1 cells, a wider net than
        the full IDs (still capped at ``pool``).
        """
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        keys, scores = self.generate(q, max(beam, 1), depth)
        want = k if similarity is None else max(k, pool or RERANK_POOL)
        out = []
        for i in range(len(q)):
            rows, sc = bucket_candidates(self.trie, keys[i], scores[i], want, depth)
            out.append((rows, sc) if similarity is None else rerank(rows, q[i], similarity, k))
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path, seq: int) -> None:
        """Write the model, the trie (as of store sequence ``seq``) and the manifest atomically."""
        from safetensors.torch import save_file

        tensors = {"quantizer.codebooks": self.quantizer.codebooks.detach().cpu().contiguous()}
        tensors.update({f"decoder.{k}": v.detach().cpu().contiguous() for k, v in self.decoder.state_dict().items()})

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp / "model.safetensors"))
            self.save_trie(tmp, seq)
            (tmp / "manifest.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))

        write_dir(directory, write)  # under the index folder's lock (see xmodal.store.files)

    def save_trie(self, directory: Path, seq: int) -> None:
        from safetensors.numpy import save_file

        arrays = self.trie.arrays()
        arrays["seq"] = np.asarray([seq], np.int64)
        part = directory / f"trie.safetensors.{os.getpid()}.part"
        save_file(arrays, str(part))
        os.replace(part, directory / "trie.safetensors")

    def save_manifest(self, directory: Path) -> None:
        part = directory / f"manifest.json.{os.getpid()}.part"
        part.write_text(json.dumps(self.meta, indent=2, sort_keys=True))
        os.replace(part, directory / "manifest.json")

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        dim: int | None = None,
        encoder: dict[str, Any] | None = None,
        device: str | None = None,
    ) -> tuple[GenerativeIndex, int]:
        """Load a saved index; returns it and the store sequence its trie reflects.

        Raises :class:`ConfigError` when no model exists or it was trained for another encoder or
        dimension, :class:`StorageError` when a file is corrupt; both name the fix.
        """
        meta = read_manifest(directory)
        if dim is not None and meta["dim"] != dim:
            raise ConfigError(
                f"the generative model was trained for dimension {meta['dim']}, the index has {dim}; {TRAIN_FIX} again"
            )
        if encoder is not None:
            try:  # a model trained before encoders recorded their identity is accepted, as the index is
                identity.check(dict(meta.get("encoder") or {}), encoder)
            except ConfigError:
                raise ConfigError(
                    f"the generative model was trained for encoder {meta.get('encoder')}, the index uses {encoder}; "
                    f"{TRAIN_FIX} again"
                ) from None
        try:
            from safetensors.torch import load_file

            tensors = load_file(str(directory / "model.safetensors"))
            quantizer = ResidualQuantizer(meta["dim"], meta["levels"], meta["codebook_size"])
            quantizer.load_state_dict({"codebooks": tensors["quantizer.codebooks"]})
            config = DecoderConfig(**meta["decoder"])
            decoder = IDDecoder(config)
            decoder.load_state_dict({k[len("decoder.") :]: v for k, v in tensors.items() if k.startswith("decoder.")})
            index = cls(quantizer, decoder, meta, device)
            seq = index._load_trie(directory)
        except Exception as exc:  # safetensors raises its own SafetensorError for a damaged header
            problem = f"{directory}: the generative model is corrupt or incomplete ({exc})"
            raise StorageError(f"{problem}; {TRAIN_FIX} again") from exc
        return index, seq

    def _load_trie(self, directory: Path) -> int:
        from safetensors.numpy import load_file

        arrays = load_file(str(directory / "trie.safetensors"))
        codes = arrays["codes"].reshape(-1, self.trie.length)
        self.trie.add(arrays["rows"], codes)
        return int(arrays["seq"][0])


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a saved model, checked for format version."""
    path = directory / "manifest.json"
    if not path.exists():
        raise ConfigError(f"no generative model in {directory}; {TRAIN_FIX} first")
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"{path}: unreadable manifest ({exc}); {TRAIN_FIX} again") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise StorageError(
            f"{path}: format version {meta.get('format_version') if isinstance(meta, dict) else '?'} "
            f"is not {FORMAT_VERSION}; {TRAIN_FIX} again"
        )
    return meta
