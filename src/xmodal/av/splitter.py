"""The ``audio`` and ``video`` splitters (:mod:`xmodal.splitters`): a recording becomes a parent item and
one segment per time window (sound) or shot (video), each with a ``span`` of start and end seconds.

- Sound: fixed windows of ``window`` seconds overlapping by ``overlap`` (30 s every 20 s by default), or, with
  ``segments="turns"``, speaker turns (:mod:`~xmodal.av.turns`: cut where the voice changes, a turn longer
  than ``window`` cut into parts; recordings of up to an hour), each segment's text the words said in it
  (Whisper tiny.en), its attribute ``fingerprint`` its Chromaprint fingerprint
  (:func:`~xmodal.av.fingerprint.to_attribute`).
- Video: shots (PySceneDetect) or fixed windows (``SplitOptions.extra["shots"] = "fixed"``), each
  segment's image its middle frame (a JPEG: the hit's thumbnail, and the image vector), its text the
  speech of its sound track, its fingerprint that track's.

The parent's attributes give the ``duration`` in seconds, the codecs, and the fingerprint of the first
two minutes. ``SplitOptions.extra`` may set ``window``, ``overlap``, ``shots`` (``"detect"`` or
``"fixed"``), ``transcribe`` (False: no speech-to-text), ``language`` (else the parent's attribute
``language``, else the sound stream's language tag, else English for the English-only default model) and
``clips`` (default True): each segment with sound keeps it as its ``audio`` medium (Ogg Opus at 24 kb/s,
:func:`~xmodal.av.decode.encode_clip`) and a video's parent its file as its ``audio`` medium too (stored
once), so the ``audio`` encoder (:mod:`xmodal.encoders.audio`) gives each an ``audio`` vector; other
encoders embed a segment's text and frame as before.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..media_loaders import MediaRef
from ..records import Span
from ..splitters import Segment, SegmentError, Source, Split, SplitOptions
from .decode import RATE, decode_audio, encode_clip, frame_jpeg
from .fingerprint import FILE_SECONDS, fingerprint, to_attribute
from .hearing import Failed, Heard, hear
from .probe import AUDIO_SUFFIXES, VIDEO_SUFFIXES, MediaFileError, MediaInfo, clock, probe
from .shots import detect_shots, window_shots
from .speech import Transcriber
from .turns import turn_spans
from .windows import OVERLAP, WINDOW, fixed_windows

MAX_TURNS_SECONDS = 3600.0  #: the longest recording split into speaker turns (decoded whole: 230 MB an hour)


def looks_like_media(head: bytes) -> bool:
    """Whether the first bytes are those of an audio or video container ffmpeg reads."""
    return (
        (head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "))
        or head[:3] == b"ID3"
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # an MPEG audio / ADTS frame
        or head[:4] in (b"OggS", b"fLaC", b"\x1a\x45\xdf\xa3", b"FORM")
        or head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
    )


class _MediaSplitter:
    name = "audio"
    need = "audio"
    suffixes: frozenset[str] = AUDIO_SUFFIXES

    def sniff(self, head: bytes) -> bool:
        return looks_like_media(head)

    def split(self, source: Source, options: SplitOptions) -> Split:
        path, temporary = _file_of(source, options)
        try:
            info = probe(path, need=self.need, limit=options.max_seconds, item=source.name)
            transcriber = Transcriber() if options.extra.get("transcribe", True) and info.has_audio else None
            language = _language(source, info, options)
            if transcriber is not None and language:
                transcriber.check_language(language, item=source.name)
            attributes = _file_attributes(info, source.name)
            spans = self.spans(info, options)
        except BaseException:
            _remove(temporary)
            raise
        attributes["segments"] = len(spans)
        media = self.parent_media(source, info, spans)
        clips = bool(options.extra.get("clips", True))
        if clips and info.has_audio and self.name != "audio":  # a video's sound track, the same file
            media["audio"] = media[self.name]
        segments = self._segments(info, spans, source, options, (transcriber, language), temporary)
        return Split(segments=segments, attributes=attributes, media=media)

    def parent_media(self, source: Source, info: MediaInfo, spans: list[tuple[float, float]]) -> dict[str, MediaRef]:
        """The recording itself, kept in the index's media store so a hit can be played from its start."""
        if source.data is not None:
            return {self.name: source.data}
        return {self.name: str(Path(info.path).resolve())}

    def spans(self, info: MediaInfo, options: SplitOptions) -> list[tuple[float, float]]:
        window = float(options.extra.get("window", WINDOW))
        how = options.extra.get("segments", "windows")
        if how == "turns":
            if info.duration > MAX_TURNS_SECONDS:
                raise MediaFileError(
                    info.path,
                    f"lasts {clock(info.duration)}: speaker turns are found in files of up to "
                    f"{clock(MAX_TURNS_SECONDS)}",
                    "split it with segments='windows' (xmodal add --audio-segments windows), or cut it shorter",
                )
            return turn_spans(decode_audio(info, item=info.path), longest=window)
        if how != "windows":
            raise ConfigError(f"split option segments: {how!r} is not 'windows' or 'turns'")
        return fixed_windows(info.duration, window, float(options.extra.get("overlap", OVERLAP)))

    def segment(self, info: MediaInfo, heard: Heard, source: Source, clips: bool = False) -> Segment | SegmentError:
        span = Span(start=heard.start, end=heard.end)
        attributes = {"fingerprint": to_attribute(heard.fingerprint)} if len(heard.fingerprint) else {}
        try:
            media = _clip(heard, source) if clips else {}
        except MediaFileError as exc:
            return SegmentError(span, exc.problem, exc.fix)
        return Segment(span, text=heard.text, media=media, attributes=attributes)

    def _segments(
        self,
        info: MediaInfo,
        spans: list[tuple[float, float]],
        source: Source,
        options: SplitOptions,
        speech: tuple[Transcriber | None, str | None],
        temporary: Path | None,
    ) -> Iterator[Segment | SegmentError]:
        try:
            if not info.has_audio:  # a silent video: its shots without speech
                for a, b in spans:
                    yield self.segment(info, Heard(a, b, "", fingerprint_of_nothing()), source)
                return
            transcriber, language = speech
            parts = hear(
                info, spans, transcriber=transcriber, language=language, item=source.name, progress=options.progress
            )
            for part in parts:
                if isinstance(part, Failed):
                    yield SegmentError(Span(start=part.start, end=part.end), part.problem, part.fix)
                else:
                    yield self.segment(info, part, source, bool(options.extra.get("clips", True)))
        finally:
            _remove(temporary)


class AudioSplitter(_MediaSplitter):
    """WAV, MP3, OGG, FLAC, M4A: fixed windows with overlap, transcribed and fingerprinted."""

    name = "audio"
    need = "audio"
    suffixes = AUDIO_SUFFIXES


class VideoSplitter(_MediaSplitter):
    """MP4, WebM, MKV: shots (or fixed windows), each with its middle frame, speech and fingerprint."""

    name = "video"
    need = "video"
    suffixes = VIDEO_SUFFIXES

    def spans(self, info: MediaInfo, options: SplitOptions) -> list[tuple[float, float]]:
        if options.extra.get("shots", "detect") == "fixed":
            return window_shots(info, float(options.extra.get("window", 10.0)))
        return detect_shots(info)

    def parent_media(self, source: Source, info: MediaInfo, spans: list[tuple[float, float]]) -> dict[str, MediaRef]:
        """The video and, as its thumbnail, the middle frame of its first shot."""
        media = super().parent_media(source, info, spans)
        if spans:
            try:
                media["image"] = frame_jpeg(info.path, (spans[0][0] + spans[0][1]) / 2, item=source.name)
            except MediaFileError:
                pass  # no thumbnail: the shots say which frames fail
        return media

    def segment(self, info: MediaInfo, heard: Heard, source: Source, clips: bool = False) -> Segment | SegmentError:
        span = Span(start=heard.start, end=heard.end)
        try:
            frame = frame_jpeg(info.path, (heard.start + heard.end) / 2, item=source.name)
            sound = _clip(heard, source) if clips else {}
        except MediaFileError as exc:
            return SegmentError(span, exc.problem, exc.fix)
        attributes = {"fingerprint": to_attribute(heard.fingerprint)} if len(heard.fingerprint) else {}
        return Segment(span, text=heard.text, media={"image": frame, **sound}, attributes=attributes)


MIN_CLIP_SECONDS = 0.25  #: shorter sound is not kept as a segment's clip (too short to embed)


def _clip(heard: Heard, source: Source) -> dict[str, MediaRef]:
    """A segment's own sound as its ``audio`` medium, when it has enough of it."""
    if heard.sound is None or len(heard.sound) < MIN_CLIP_SECONDS * RATE:
        return {}
    return {"audio": encode_clip(heard.sound, item=source.name)}


def fingerprint_of_nothing() -> Any:
    import numpy as np

    return np.zeros(0, dtype=np.uint32)


def _file_attributes(info: MediaInfo, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"duration": round(info.duration, 3), "container": info.container}
    if info.audio_codec:
        out["audio_codec"] = info.audio_codec
        head = decode_audio(info, seconds=min(info.duration, FILE_SECONDS), item=name)
        fp = fingerprint(head)
        if len(fp):
            out["fingerprint"] = to_attribute(fp)
    if info.video_codec:
        out["video_codec"] = info.video_codec
        out["width"], out["height"] = info.width, info.height
    return out


def _language(source: Source, info: MediaInfo, options: SplitOptions) -> str | None:
    for value in (options.extra.get("language"), source.attributes.get("language"), info.language):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _file_of(source: Source, options: SplitOptions) -> tuple[Path, Path | None]:
    """A path ffmpeg can read: the source's own, or a temporary copy of uploaded bytes (removed when done)."""
    if source.path is not None and source.data is None:
        return source.path, None
    data = source.read(options.max_bytes)
    handle, name = tempfile.mkstemp(prefix="xmodal-", suffix=Path(source.name).suffix[:10] or ".bin")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return Path(name), Path(name)


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


__all__ = ["AudioSplitter", "VideoSplitter", "clock", "looks_like_media"]
