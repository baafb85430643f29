"""Decoding with ``ffmpeg``: a file's sound as mono PCM samples, and a video's frame at a time as a JPEG.

A decode that yields much less sound than the container announced is a truncated file: refused with a
:class:`~xmodal.av.probe.MediaFileError` rather than indexed half.
"""

from __future__ import annotations

import subprocess

import numpy as np
import numpy.typing as npt

from .probe import MediaFileError, MediaInfo, clock, tool

RATE = 16_000  #: samples per second of decoded sound (what Whisper reads)
FRAME_SIDE = 480  #: a key frame's longer side, in pixels
#: Decoded sound this much shorter than announced (and at least a second) means a truncated file.
TRUNCATED_SHARE = 0.1
Samples = npt.NDArray[np.float32]


def decode_audio(
    info: MediaInfo,
    *,
    start: float = 0.0,
    seconds: float | None = None,
    rate: int = RATE,
    item: str | None = None,
    check_length: bool = True,
) -> Samples:
    """The file's first audio stream as mono float32 samples in [-1, 1] at ``rate``: all of it, or
    ``seconds`` from ``start``. With ``check_length``, sound that stops well before the announced end
    (a truncated file) is a :class:`~xmodal.av.probe.MediaFileError`."""
    cmd = [tool("ffmpeg", "ffmpeg"), "-nostdin", "-v", "error"]
    if start > 0:
        cmd += ["-ss", f"{start:.3f}"]
    if seconds is not None:
        cmd += ["-t", f"{seconds:.3f}"]
    cmd += ["-i", info.path, "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"]
    expected = max(0.0, min(info.duration, start + (seconds or info.duration)) - start)
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=max(120.0, expected), check=False)
    except subprocess.TimeoutExpired:
        raise MediaFileError(info.path, "took too long to decode", "re-encode it with ffmpeg", item=item) from None
    samples = np.frombuffer(done.stdout[: len(done.stdout) // 4 * 4], dtype="<f4").astype(np.float32)
    if done.returncode == 0 and len(samples) == 0 and start > 0:
        raise MediaFileError(
            info.path,
            f"is truncated: it announces {clock(info.duration)} but has no sound from {clock(start)}",
            "give the complete file: re-copy or re-download it",
            item=item,
        )
    if done.returncode != 0 or len(samples) == 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no samples"]
        raise MediaFileError(
            info.path,
            f"its sound from {clock(start)} could not be decoded ({reason[0][:200]})",
            "check the file is complete; re-encode it with ffmpeg",
            item=item,
        )
    got = len(samples) / rate
    if check_length and expected - got > max(1.0, TRUNCATED_SHARE * expected):
        raise MediaFileError(
            info.path,
            f"is truncated: it announces {clock(info.duration)} but its sound stops at {clock(start + got)}",
            "give the complete file: re-copy or re-download it",
            item=item,
        )
    return samples


def to_pcm16(samples: Samples) -> bytes:
    """Float samples as signed 16-bit little-endian PCM (what ``fpcalc`` reads)."""
    clipped = np.clip(samples, -1.0, 1.0) * 32767.0
    return clipped.astype("<i2").tobytes()


CLIP_BITRATE = "24k"  #: a segment's sound, kept as Ogg Opus (about 90 KB for 30 s)


def encode_clip(samples: Samples, *, rate: int = RATE, item: str | None = None) -> bytes:
    """``samples`` (mono float32 at ``rate``) as an Ogg Opus file of :data:`CLIP_BITRATE`: a segment's own
    sound, kept so the ``audio`` encoder can embed it (see :mod:`xmodal.av.splitter`)."""
    cmd = [tool("ffmpeg", "ffmpeg"), "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1"]
    cmd += ["-i", "-", "-c:a", "libopus", "-b:a", CLIP_BITRATE, "-f", "ogg", "-"]
    data = np.clip(samples, -1.0, 1.0).astype("<f4").tobytes()
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        done = subprocess.CompletedProcess(cmd, 1, b"", b"timed out")
    if done.returncode != 0 or not done.stdout.startswith(b"OggS"):
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise MediaFileError(
            f"media.audio{'' if item is None else ' of ' + item}",
            f"its sound could not be encoded as Opus ({reason[0][:200]})",
            "install an ffmpeg with libopus (Debian's has it), or split with the option clips=False",
            item=item,
        )
    return done.stdout


def frame_jpeg(path: str, at: float, *, side: int = FRAME_SIDE, item: str | None = None) -> bytes:
    """The video frame at ``at`` seconds, its longer side scaled to ``side`` pixels, as JPEG bytes."""
    scale = f"scale='if(gt(iw,ih),min({side},iw),-2)':'if(gt(iw,ih),-2,min({side},ih))'"
    cmd = [tool("ffmpeg", "ffmpeg"), "-nostdin", "-v", "error", "-ss", f"{max(at, 0.0):.3f}", "-i", path]
    cmd += ["-frames:v", "1", "-vf", scale, "-q:v", "4", "-f", "image2pipe", "-vcodec", "mjpeg", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        done = subprocess.CompletedProcess(cmd, 1, b"", b"timed out")
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        raise MediaFileError(
            path,
            f"has no decodable frame at {clock(at)}",
            "check the file is complete; re-encode it with ffmpeg",
            item=item,
        )
    return done.stdout
