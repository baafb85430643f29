"""The ``audio`` encoder: another encoder (``offline`` by default) plus an ``audio`` vector kind made from an
item's ``audio`` medium by an offline audio model (:mod:`.audio_models`), for "sounds like this" search.

``create_encoder("audio", base="offline", model="resemblyzer")``, or ``xmodal --encoder audio``. Every kind
of the base encoder is kept (``text``, ``image``, ``combined``); an item with an ``audio`` medium (a sound
file, a segment of one, a video's sound track: see :mod:`xmodal.av.splitter`) gets an ``audio`` vector too.
A query with an audio medium (``xmodal search --audio clip.wav``, ``--media audio=clip.wav``, an uploaded
query file) gets an ``audio`` vector and should target the ``audio`` kind: the audio model reads no text, so
its vectors share the index's dimensions but not the text space. The model's vector is zero-padded to the
index's dimensions (its cosines unchanged), or, when the index has fewer, projected by a fixed seeded random
orthogonal matrix (cosines approximately kept). A content mixing audio with text or an image is refused.

Options: ``base`` (an encoder name, or its saved config), ``model`` (``resemblyzer``: voices, the default;
``aisfx``: sound effects), ``max_seconds`` (how much of a recording is embedded: the first 300 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ValidationError
from . import identity
from .audio_models import AudioModel, audio_model
from .base import Content, Encoder, Purpose, Vectors, create_encoder, kinds_of, normalize

AUDIO = "audio"
MAX_SECONDS = 300.0
PROJECTION_SEED = 20240614


class AudioEncoder:
    """A base encoder's kinds plus ``audio`` (see the module's docstring)."""

    name = "audio"
    #: The kinds whose vectors are not comparable with the others': a query of audio alone targets ``audio``.
    separate_kinds = frozenset({AUDIO})

    def __init__(
        self,
        base: str | Mapping[str, Any] = "offline",
        model: str = "resemblyzer",
        max_seconds: float = MAX_SECONDS,
        dim: int | None = None,
        **base_options: Any,
    ) -> None:
        if isinstance(base, Mapping):
            options = dict(base)
            base_name = str(options.pop("name", ""))
            base_options = {**options, **base_options}
        else:
            base_name = str(base)
        if not base_name or base_name == self.name:
            raise ConfigError(f"encoder 'audio': base must name another encoder (e.g. 'offline'), got {base!r}")
        if dim is not None:
            base_options["dim"] = dim
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or max_seconds <= 0:
            raise ConfigError(f"encoder 'audio': max_seconds must be a positive number, got {max_seconds!r}")
        self.base: Encoder = create_encoder(base_name, **base_options)
        self.model: AudioModel = audio_model(model)
        self.max_seconds = float(max_seconds)
        self.dim = self.base.dim
        self.modalities = frozenset(self.base.modalities) | {AUDIO}
        self.vector_kinds = {**kinds_of(self.base), AUDIO: (AUDIO,)}
        self._projection = _projection(self.model.dim, self.dim)
        self._identity: dict[str, Any] | None = None

    # -- encoding ------------------------------------------------------------------------------------------
    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors:
        purpose = Purpose.parse(purpose)
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        others: list[int] = []
        for i, content in enumerate(batch):
            recording = content.media.get(AUDIO)
            if recording is None:
                others.append(i)
                continue
            if len(content.parts()) > 1:
                raise ValidationError(
                    "content.audio",
                    "mixes audio with text or an image; audio vectors are in a space of their own",
                    "search by the audio alone (target the 'audio' kind), or by the text/image alone",
                )
            out[i] = self.embed_recording(recording)
        if others:
            out[others] = self.base.encode([batch[i] for i in others], purpose)
        return out

    def encode_queries(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.QUERY)

    def encode_documents(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.DOCUMENT)

    def embed_recording(self, recording: Any) -> Vectors:
        """The ``audio`` vector of a loaded recording (:class:`xmodal.av.loaders.Recording`) or of samples
        already at the model's rate (a float32 array)."""
        if isinstance(recording, np.ndarray):
            samples = recording.astype(np.float32)
        else:
            samples = recording.samples(self.model.rate, self.max_seconds)
        if len(samples) < self.model.rate // 4:
            raise ValidationError(
                "media.audio", f"has {len(samples) / self.model.rate:.2f} s of sound", "give at least 0.25 s"
            )
        return self.place(self.model.embed(samples))

    def place(self, raw: Vectors) -> Vectors:
        """A raw model vector in the index's dimensions, L2-normalised."""
        raw = normalize(np.asarray(raw, dtype=np.float32).reshape(1, -1))[0]
        if self._projection is not None:
            raw = raw @ self._projection
        else:
            raw = np.pad(raw, (0, self.dim - len(raw)))
        placed: Vectors = normalize(raw.reshape(1, -1))[0]
        return placed

    # -- the optional hooks of the base --------------------------------------------------------------------
    def prefetch(self) -> None:
        prefetch = getattr(self.base, "prefetch", None)
        if callable(prefetch):
            prefetch()

    def set_repository(self, modalities: Any) -> None:
        tell = getattr(self.base, "set_repository", None)
        if callable(tell):
            tell(modalities)

    def usage(self) -> dict[str, Any]:
        usage = getattr(self.base, "usage", None)
        return dict(usage()) if callable(usage) else {}

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = identity.of_files(f"{self.model.name} (audio)", self.model.weights)
        return self._identity

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "base": self.base.config(),
            "model": self.model.name,
            "max_seconds": self.max_seconds,
            identity.IDENTITY: self.identity(),
        }


def _projection(native: int, dim: int) -> np.ndarray | None:
    """None when ``native`` fits in ``dim`` (zero padding); else a seeded ``native × dim`` matrix with
    orthonormal columns."""
    if native <= dim:
        return None
    rng = np.random.default_rng(PROJECTION_SEED)
    q, _ = np.linalg.qr(rng.standard_normal((native, dim)))
    out: np.ndarray = q.astype(np.float32)
    return out
