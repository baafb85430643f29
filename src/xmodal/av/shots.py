"""A video's time line cut into shots: PySceneDetect's ContentDetector (a cut where the HSV content of
consecutive frames changes by more than ``threshold``), or fixed windows.

A shot longer than ``max_shot`` seconds is cut into equal parts, so a long take still gives segments a
query can land in.
"""

from __future__ import annotations

import math

from ..errors import MissingDependency
from .probe import MediaFileError, MediaInfo, clock
from .windows import fixed_windows

THRESHOLD = 27.0  #: ContentDetector's default
MAX_SHOT = 60.0  #: the longest segment, in seconds
MIN_SHOT = 0.6  #: the shortest shot, in seconds (ContentDetector's min_scene_len, in frames at the video's rate)


def detect_shots(
    info: MediaInfo, *, threshold: float = THRESHOLD, max_shot: float = MAX_SHOT
) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each shot of the video at ``info.path``."""
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError as exc:
        raise MissingDependency("scenedetect", "media") from exc
    try:
        video = open_video(info.path)
        fps = float(video.frame_rate) or 25.0
        manager = SceneManager()
        manager.add_detector(ContentDetector(threshold=threshold, min_scene_len=max(1, round(MIN_SHOT * fps))))
        manager.detect_scenes(video, show_progress=False)
        scenes = [(float(a.seconds), float(b.seconds)) for a, b in manager.get_scene_list()]
    except MediaFileError:
        raise
    except Exception as exc:  # OpenCV/PyAV raise their own types for an undecodable stream
        raise MediaFileError(
            info.path, f"its pictures could not be read ({type(exc).__name__}: {exc})", "re-encode it with ffmpeg"
        ) from exc
    if not scenes:
        scenes = [(0.0, info.duration)]
    return split_long(scenes, max_shot)


def split_long(spans: list[tuple[float, float]], max_shot: float = MAX_SHOT) -> list[tuple[float, float]]:
    """``spans`` with each one longer than ``max_shot`` cut into equal parts no longer than it."""
    out: list[tuple[float, float]] = []
    for start, end in spans:
        parts = max(1, math.ceil((end - start) / max_shot - 1e-9))
        step = (end - start) / parts
        out.extend((round(start + i * step, 3), round(start + (i + 1) * step, 3)) for i in range(parts))
    return out


def window_shots(info: MediaInfo, window: float = 10.0) -> list[tuple[float, float]]:
    """Fixed windows of ``window`` seconds, no overlap (when shot detection is not wanted)."""
    return fixed_windows(info.duration, window, 0.0)


def describe(span: tuple[float, float]) -> str:
    """``01:05–01:20`` for a span."""
    return f"{clock(span[0])}–{clock(span[1])}"
