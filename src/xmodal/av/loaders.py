"""The ``audio`` and ``video`` media loaders: a file is probed (refused when empty, corrupt, of an
unsupported codec or too long) and kept, byte for byte, in the index's media store, so a hit can be
played from its start. The content an encoder gets is a :class:`Recording` (the probe's
:class:`~xmodal.av.probe.MediaInfo` and the bytes): the ``audio`` encoder (:mod:`xmodal.encoders.audio`)
decodes its sound into an ``audio`` vector; the other encoders make none from it (a segment's text and key
frame carry their vectors)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..media_loaders import LoadedMedia, MediaRef
from .decode import decode_audio
from .probe import AUDIO_SUFFIXES, VIDEO_SUFFIXES, MediaFileError, MediaInfo, probe

MAX_BYTES = 1 << 30  #: the largest audio or video file kept (1 GiB)


@dataclass(frozen=True, slots=True, repr=False)
class Recording:
    """A checked recording: what the probe found (``info``; its ``path`` may be a temporary file already
    removed) and the file's ``data``."""

    info: MediaInfo
    data: bytes

    def __repr__(self) -> str:
        return f"Recording({self.info.container}, {self.info.duration:.1f} s, {len(self.data)} bytes)"

    def samples(self, rate: int, seconds: float | None = None) -> npt.NDArray[np.float32]:
        """Its sound as mono float32 samples at ``rate``: all of it, or the first ``seconds``."""
        if not self.info.audio_codec:
            raise MediaFileError(self.info.path, "has no sound", "give a file with a sound track")
        handle, name = tempfile.mkstemp(prefix="xmodal-audio-", suffix=".bin")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(self.data)
            info = dataclasses.replace(self.info, path=name)
            return decode_audio(info, seconds=seconds, rate=rate, check_length=False)
        finally:
            os.unlink(name)


class _FileLoader:
    name = "audio"
    max_bytes = MAX_BYTES
    need = "audio"
    suffixes: frozenset[str] = AUDIO_SUFFIXES

    def load(self, ref: MediaRef, base_dir: Path | None = None, *, item: str | None = None) -> LoadedMedia:
        if isinstance(ref, bytes):
            return self._load_bytes(ref, item)
        path = Path(ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if path.is_file() and path.stat().st_size > self.max_bytes:
            raise MediaFileError(
                path, f"is larger than {self.max_bytes >> 20} MiB", "split or re-encode it smaller", item=item
            )
        info = probe(path, need=self.need, item=item)
        suffix = path.suffix.lower() if path.suffix.lower() in self.suffixes else ".bin"
        data = path.read_bytes()
        return LoadedMedia(Recording(info, data), data, suffix)

    def _load_bytes(self, data: bytes, item: str | None) -> LoadedMedia:
        if len(data) > self.max_bytes:
            raise MediaFileError(
                f"media.{self.name}", f"is larger than {self.max_bytes >> 20} MiB", "split it", item=item
            )
        with tempfile.NamedTemporaryFile(suffix=".bin") as handle:
            handle.write(data)
            handle.flush()
            info = probe(handle.name, need=self.need, item=item)
        suffix = ".mp4" if "mp4" in info.container else f".{info.container.split(',')[0]}"
        return LoadedMedia(Recording(info, data), data, suffix if len(suffix) <= 9 else ".bin")


class AudioLoader(_FileLoader):
    """WAV, MP3, OGG, FLAC, M4A (anything ffmpeg decodes that has a sound stream; a video's sound track too,
    kept under the video's own suffix so the file is stored once)."""

    name = "audio"
    need = "audio"
    suffixes = AUDIO_SUFFIXES | VIDEO_SUFFIXES


class VideoLoader(_FileLoader):
    """MP4, WebM, MKV (anything ffmpeg decodes that has a picture stream)."""

    name = "video"
    need = "video"
    suffixes = VIDEO_SUFFIXES
