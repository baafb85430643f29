"""Offline audio→audio embedding models, from the samples of a recording to one vector.

Both ship their weights inside their PyPI packages (no download) and run on the CPU with torch:

- ``resemblyzer`` (Resemblyzer 0.1.4, GE2E speaker encoder, 256-d): a voice's timbre; the utterance's
  partial embeddings (1.6 s, 1.3 a second) averaged. Reads 16 kHz sound, silences longer than about
  0.2 s shortened by its voice activity detector (sound with no voice in it is embedded as it is).
- ``aisfx`` (aiSFX 0.1.2, ISMIR 2022 sound-effects model, 512-d): a 96-band mel spectrogram of 44.1 kHz
  sound through its CNN, 2 s blocks every second, averaged. Its vectors are all positive (ReLU), so every
  sound is near every other (cosines of 0.8 to 0.99): the ranking still works, a threshold on it does not
  carry across collections.

Neither reads text, so the ``audio`` vectors live in a space of their own (:mod:`.audio`). The packages pin
old versions of numpy and librosa they do not need: install them with ``pip install --no-deps aisfx
resemblyzer`` after ``librosa`` and ``webrtcvad-wheels`` (the ``audio`` extra).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, MissingDependency
from .identity import WeightFile

Samples = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]


class AudioModel(Protocol):
    """Samples (mono float32 in [-1, 1] at ``rate``) → one raw vector of ``dim`` components."""

    name: str
    dim: int
    rate: int
    weights: dict[str, WeightFile]

    def embed(self, samples: Samples) -> Vector: ...


def _need(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency(module, "audio")


class Resemblyzer:
    """Resemblyzer's speaker encoder (see the module's docstring)."""

    name = "resemblyzer"
    dim = 256
    rate = 16_000
    weights = {"resemblyzer": WeightFile("resemblyzer", "resemblyzer", "pretrained.pt", "audio")}

    def __init__(self) -> None:
        for module in ("resemblyzer", "librosa", "webrtcvad", "torch"):
            _need(module)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch
                from resemblyzer import VoiceEncoder

                torch.set_num_threads(1)  # one thread each: several encoders share the cores
                self._model = VoiceEncoder(device="cpu", verbose=False)
            return self._model

    def embed(self, samples: Samples) -> Vector:
        from resemblyzer.audio import normalize_volume, trim_long_silences
        from resemblyzer.hparams import audio_norm_target_dBFS

        model = self._load()
        wav = samples.astype(np.float32)
        if not np.any(wav):
            return np.zeros(self.dim, dtype=np.float32)
        wav = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True).astype(np.float32)
        voiced = trim_long_silences(np.clip(wav, -1.0, 1.0))
        if len(voiced) >= self.rate // 2:  # keep the voice; sound with little voice is embedded whole
            wav = voiced.astype(np.float32)
        with self._lock:  # one LSTM forward at a time (torch modules are not reentrant-safe for eval state)
            vector = model.embed_utterance(wav)
        return np.asarray(vector, dtype=np.float32)

    def windows(
        self, samples: Samples, window: float = 1.0, hop: float = 0.2
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """The voice of each ``window`` seconds every ``hop`` seconds: their centres in seconds and their
        embeddings (unit rows), in one batch through the model (for speaker turns, :mod:`xmodal.av.turns`)."""
        import torch
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
        from resemblyzer.hparams import audio_norm_target_dBFS, mel_window_step

        model = self._load()
        per_second = 1000 // mel_window_step
        size, step = round(window * per_second), max(1, round(hop * per_second))
        wav = normalize_volume(samples.astype(np.float32), audio_norm_target_dBFS, increase_only=True)
        mel = wav_to_mel_spectrogram(np.clip(wav, -1.0, 1.0).astype(np.float32))
        starts = list(range(0, max(1, len(mel) - size + 1), step))
        batch = np.stack([np.pad(mel[s : s + size], ((0, max(0, s + size - len(mel))), (0, 0))) for s in starts])
        with self._lock, torch.no_grad():
            out = model(torch.from_numpy(batch.astype(np.float32))).numpy()
        centres = (np.asarray(starts, dtype=np.float64) + size / 2) / per_second
        return centres, np.asarray(out, dtype=np.float32)


class AiSfx:
    """aiSFX's sound-effects encoder (see the module's docstring)."""

    name = "aisfx"
    dim = 512
    rate = 44_100
    weights = {"aisfx": WeightFile("aisfx", "aisfx", "models/checkpoint.pth", "audio")}

    def __init__(self) -> None:
        for module in ("aisfx", "librosa", "torch"):
            _need(module)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch
                from aisfx import inference

                # The checkpoint is a pickle of (state_dict, {dataset: (np.int64, classes)}): loaded with
                # torch's weights-only unpickler, allowing only numpy's scalar and dtypes besides tensors.
                from numpy._core import multiarray

                allowed: list[Any] = [
                    (multiarray.scalar, "numpy.core.multiarray.scalar"),
                    np.dtype,
                    *{type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32")},
                ]
                with torch.serialization.safe_globals(allowed):
                    weights, datasets = torch.load(
                        inference.get_path_modelWeights(), map_location="cpu", weights_only=True
                    )
                self._model = inference.load_bestModel(weights, datasets, "cpu")
            return self._model

    def spectrogram(self, samples: Samples) -> npt.NDArray[np.float64]:
        """aiSFX's input: the log mel spectrogram its ``librosa`` front end computes, frames × 96 bands."""
        import librosa
        from aisfx import inference

        peak = float(np.max(np.abs(samples))) or 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = librosa.feature.melspectrogram(
                y=(samples / peak).astype(np.float32),
                sr=self.rate,
                n_mels=inference.MEL_BINS,
                norm=1.0,
                fmin=inference.F_MIN,
                fmax=inference.F_MAX,
                htk=True,
                power=2.0,
                hop_length=inference.SPEC_HOP_LENGTH,
                win_length=inference.SPEC_BLOCK_LENGTH,
            )
        out: npt.NDArray[np.float64] = np.log10(spec * 10000.0 + 1).T
        return out

    def embed(self, samples: Samples) -> Vector:
        import torch
        from aisfx import inference

        model = self._load()
        if not np.any(samples):
            return np.zeros(self.dim, dtype=np.float32)
        spec = inference.spectrogram_normalize(self.spectrogram(samples))
        block = inference.EMB_BLOCK_LENGTH
        hop = block // 2
        starts = range(0, max(1, len(spec) - block + hop), hop)
        padded = np.vstack((spec, np.zeros((block, spec.shape[1]))))
        blocks = np.stack([padded[s : s + block] for s in starts]).astype(np.float32)
        with self._lock, torch.no_grad():
            out = model.get_embedding(torch.from_numpy(blocks)).numpy()
        mean = out.mean(axis=0)
        norm = float(np.linalg.norm(mean)) or 1.0
        return np.asarray(mean / norm, dtype=np.float32)


MODELS: dict[str, type[Resemblyzer] | type[AiSfx]] = {"resemblyzer": Resemblyzer, "aisfx": AiSfx}


def audio_model(name: str) -> AudioModel:
    """The audio model called ``name`` (``resemblyzer`` or ``aisfx``); a :class:`ConfigError` otherwise."""
    cls = MODELS.get(name)
    if cls is None:
        raise ConfigError(f"audio model {name!r} is not known; use one of {', '.join(MODELS)}")
    return cls()
