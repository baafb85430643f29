"""What an audio or video file holds, read with ``ffprobe``, and the checks that refuse a file early.

A file is refused with a :class:`MediaFileError` naming it and the fix when it is empty, when ffprobe
cannot read it (corrupt, or an extension that lies about its content), when it has no stream of the
kind asked for, when its codec is one ffmpeg cannot decode, or when it lasts longer than
:func:`max_seconds` (default 4 hours, ``XMODAL_MAX_MEDIA_SECONDS`` or a caller's limit).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ValidationError

#: The longest file accepted by default, in seconds (decoded and transcribed in blocks: memory stays bounded).
DEFAULT_MAX_SECONDS = 4 * 3600.0
MAX_SECONDS_ENV = "XMODAL_MAX_MEDIA_SECONDS"
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".webm", ".mkv", ".mov"})
PROBE_TIMEOUT = 60.0


class MediaFileError(ValidationError):
    """An audio or video file that cannot be used: empty, corrupt, truncated, of an unsupported codec, too long."""

    def __init__(self, path: str | Path, problem: str, fix: str, *, item: str | None = None) -> None:
        super().__init__(str(path), problem, fix, item=item)
        self.path = str(path)


class MissingTool(ConfigError):
    """A program this needs (``ffmpeg``, ``fpcalc``) is not installed."""

    def __init__(self, program: str, package: str) -> None:
        super().__init__(f"{program} is not installed: apt-get install {package} (or your system's package)")
        self.program = program
        self.package = package


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A probed file: its container, duration in seconds, and its first audio and video streams' codecs."""

    path: str
    container: str
    duration: float
    audio_codec: str | None
    video_codec: str | None
    width: int = 0
    height: int = 0
    language: str | None = None  #: the sound stream's language tag (``eng``), when the file names one

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


def tool(program: str, package: str) -> str:
    """The path of ``program``, or :class:`MissingTool` naming the Debian package that has it."""
    found = shutil.which(program)
    if found is None:
        raise MissingTool(program, package)
    return found


def max_seconds(limit: float | None = None) -> float:
    """The longest accepted file: ``limit``, else ``XMODAL_MAX_MEDIA_SECONDS``, else 4 hours."""
    if limit is not None:
        return float(limit)
    raw = os.environ.get(MAX_SECONDS_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{MAX_SECONDS_ENV}={raw!r} is not a number of seconds") from None
        if value > 0 and math.isfinite(value):
            return value
        raise ConfigError(f"{MAX_SECONDS_ENV}={raw!r}: give a positive number of seconds")
    return DEFAULT_MAX_SECONDS


def probe(path: str | Path, *, need: str = "audio", limit: float | None = None, item: str | None = None) -> MediaInfo:
    """Probe ``path`` and check it holds a decodable ``need`` stream (``audio``, ``video`` or ``any``) no
    longer than :func:`max_seconds`; a :class:`MediaFileError` says why not."""
    path = Path(path)
    size = _size(path, item)
    if size == 0:
        raise MediaFileError(path, "is empty (0 bytes)", "give a complete audio or video file", item=item)
    data = _ffprobe(path, item)
    info = _info(path, data)
    _check_streams(info, data, need, item)
    if not info.duration > 0:
        raise MediaFileError(path, "has no duration (no samples)", "give a file that holds sound or frames", item=item)
    longest = max_seconds(limit)
    if info.duration > longest:
        raise MediaFileError(
            path,
            f"lasts {_hms(info.duration)}, longer than the limit of {_hms(longest)}",
            f"split the file, or raise the limit ({MAX_SECONDS_ENV}=SECONDS)",
            item=item,
        )
    return info


def _size(path: Path, item: str | None) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise MediaFileError(path, "no such file", "check the path", item=item) from None
    except OSError as exc:
        raise MediaFileError(
            path, f"cannot be read ({exc.strerror})", "check the file's permissions", item=item
        ) from None


def _ffprobe(path: Path, item: str | None) -> dict[str, object]:
    cmd = [tool("ffprobe", "ffmpeg"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    try:
        done = subprocess.run([*cmd, str(path)], capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise MediaFileError(
            path, "could not be probed within a minute", "re-encode it with ffmpeg", item=item
        ) from None
    data = _json(done.stdout)
    if done.returncode != 0 or "format" not in data:
        reason = _first_line(done.stderr) or "not an audio or video file"
        raise MediaFileError(
            path,
            f"is not a readable audio or video file ({reason})",
            "check that the file is complete and that its extension matches its content",
            item=item,
        )
    return data


def _json(raw: bytes) -> dict[str, object]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _streams(data: dict[str, object]) -> list[dict[str, object]]:
    streams = data.get("streams")
    return [s for s in streams if isinstance(s, dict)] if isinstance(streams, list) else []


def _first(data: dict[str, object], kind: str) -> dict[str, object] | None:
    for stream in _streams(data):
        disposition = stream.get("disposition")
        cover = isinstance(disposition, dict) and disposition.get("attached_pic") == 1  # an MP3's cover art
        if stream.get("codec_type") == kind and not cover:
            return stream
    return None


def _info(path: Path, data: dict[str, object]) -> MediaInfo:
    fmt = data.get("format")
    fmt = fmt if isinstance(fmt, dict) else {}
    audio, video = _first(data, "audio"), _first(data, "video")
    duration = _seconds(fmt.get("duration"))
    for stream in (audio, video):
        if stream is not None and not duration:
            duration = _seconds(stream.get("duration"))
    return MediaInfo(
        path=str(path),
        container=str(fmt.get("format_name", "")),
        duration=duration,
        audio_codec=None if audio is None else str(audio.get("codec_name", "unknown")),
        video_codec=None if video is None else str(video.get("codec_name", "unknown")),
        width=_int(video.get("width")) if video else 0,
        height=_int(video.get("height")) if video else 0,
        language=_language(audio),
    )


def _language(stream: dict[str, object] | None) -> str | None:
    tags = stream.get("tags") if stream else None
    value = tags.get("language") if isinstance(tags, dict) else None
    return str(value) if value else None


def _check_streams(info: MediaInfo, data: dict[str, object], need: str, item: str | None) -> None:
    path = info.path
    if need == "audio" and not info.has_audio:
        raise MediaFileError(path, "has no audio stream", "give a sound file (WAV, MP3, OGG, FLAC, M4A)", item=item)
    if need == "video" and not info.has_video:
        raise MediaFileError(path, "has no video stream", "give a video file (MP4, WebM, MKV)", item=item)
    if need == "any" and not (info.has_audio or info.has_video):
        raise MediaFileError(path, "has neither sound nor pictures", "give an audio or video file", item=item)
    for kind, codec in (("audio", info.audio_codec), ("video", info.video_codec)):
        if codec in ("none", "unknown") and (need in (kind, "any")):
            tag = _first(data, kind) or {}
            raise MediaFileError(
                path,
                f"has a {kind} codec ffmpeg cannot decode ({tag.get('codec_tag_string', 'unknown tag')})",
                "re-encode it to a common codec (e.g. ffmpeg -i IN -c:a aac -c:v libx264 OUT.mp4)",
                item=item,
            )


def _seconds(value: object) -> float:
    try:
        seconds = float(str(value))
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _first_line(raw: bytes) -> str:
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _hms(seconds: float) -> str:
    """``1:02:03`` for 3723 seconds."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def clock(seconds: float) -> str:
    """A time for a title: ``03:20``, or ``1:03:20`` past an hour."""
    whole = int(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60:02d}:{whole % 60:02d}"
    )
