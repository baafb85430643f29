"""The recording a ``bedrock-nova`` request sends: a file in a format Nova takes, and its duration.

An encoder gets a recording as the audio/video loaders' ``Recording`` (the probe's ``MediaInfo`` and the
bytes; the probed path may be a temporary file already gone), a bare ``MediaInfo``, or a path. Its file is
used as it is when Nova takes its format (audio: mp3, wav, ogg; video: mp4, mov, mkv, webm, flv, mpeg, mpg,
wmv, 3gp); a sound in another format (FLAC, M4A, Opus, a video's sound track) is decoded to a 16 kHz mono
WAV first (ffmpeg), so every recording the loaders accept can be embedded.
"""

from __future__ import annotations

import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ValidationError
from .bedrock_nova_async import AUDIO_FORMATS, VIDEO_FORMATS

RATE = 16_000


@contextmanager
def recording_file(content: Any, medium: str) -> Iterator[tuple[Path, float]]:
    """``(path, seconds)`` of ``content`` as a file Nova takes (a temporary one removed on exit if needed)."""
    info = getattr(content, "info", content)
    data: bytes | None = getattr(content, "data", None)
    raw = getattr(info, "path", info)
    seconds = getattr(info, "duration", None)
    formats = AUDIO_FORMATS if medium == "audio" else VIDEO_FORMATS
    with tempfile.TemporaryDirectory(prefix="xmodal-nova-") as tmp:
        path = Path(raw) if isinstance(raw, (str, Path)) else None
        if path is None or not path.is_file():
            if data is None:
                raise ValidationError(
                    f"content.{medium}", "is not a readable recording", f"give the {medium} as a file path"
                )
            path = Path(tmp) / f"recording{_suffix(info)}"
            path.write_bytes(data)
        if seconds is None or not hasattr(info, "container"):
            from ...av.probe import probe

            info = probe(path, need=medium)
            seconds = info.duration
        if path.suffix.lower() not in formats:
            if medium != "audio":
                raise ValidationError(
                    "media.video",
                    f"{Path(str(raw)).name!r} is not a video format Nova Multimodal Embeddings takes",
                    f"convert it to one of {', '.join(sorted(set(VIDEO_FORMATS.values())))}",
                )
            path = _as_wav(info, path, Path(tmp) / "sound.wav")
        yield path, float(seconds)


def _suffix(info: Any) -> str:
    container = str(getattr(info, "container", ""))
    for name, suffix in (("mp4", ".mp4"), ("webm", ".webm"), ("matroska", ".mkv"), ("mp3", ".mp3"), ("wav", ".wav")):
        if name in container:
            return suffix
    return f".{container.split(',')[0]}" if container else ".bin"


def _as_wav(info: Any, source: Path, target: Path) -> Path:
    """The sound of ``source`` decoded to a 16 kHz mono 16-bit WAV at ``target``."""
    import dataclasses

    from ...av.decode import decode_audio

    samples = decode_audio(dataclasses.replace(info, path=str(source)), rate=RATE, check_length=False)
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(target), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(pcm.tobytes())
    return target
