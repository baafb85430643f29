"""The ``audio`` and ``video`` media loaders: a file is probed (refused when empty, corrupt, of an
unsupported codec or too long) and kept, byte for byte, in the index's media store, so a hit can be
played from its start. The content an encoder gets is the :class:`~xmodal.av.probe.MediaInfo`; no
bundled encoder makes a vector from it (a segment's text and key frame carry the vectors)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..media_loaders import LoadedMedia, MediaRef
from .probe import AUDIO_SUFFIXES, VIDEO_SUFFIXES, MediaFileError, probe

MAX_BYTES = 1 << 30  #: the largest audio or video file kept (1 GiB)


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
        return LoadedMedia(info, path.read_bytes(), suffix)

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
        return LoadedMedia(info, data, suffix if len(suffix) <= 9 else ".bin")


class AudioLoader(_FileLoader):
    """WAV, MP3, OGG, FLAC, M4A (anything ffmpeg decodes that has a sound stream)."""

    name = "audio"
    need = "audio"
    suffixes = AUDIO_SUFFIXES


class VideoLoader(_FileLoader):
    """MP4, WebM, MKV (anything ffmpeg decodes that has a picture stream)."""

    name = "video"
    need = "video"
    suffixes = VIDEO_SUFFIXES
