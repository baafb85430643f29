"""A video's time line cut into shots: PySceneDetect's AdaptiveDetector (a cut where the change between
consecutive frames, in hue, saturation, luma and edges, is ``adaptive`` times the change around it and at
least ``min_content``), or fixed windows.

Why adaptive, with edges and a low floor: the fixed ContentDetector cut (27, hue/saturation/luma only) found
33% of the cuts of benchmarks/bench_video.py, whose shots are stills of photos and clip-art: two drawings
on white, or two grey photos, differ by 1 to 20 in those terms, and a small drawing replaced by another small
drawing by as little as 0.27. Against the still frames around it (exactly 0 in H.264) such a cut stands out
by its ratio; edges tell two drawings apart. The ratio also keeps camera motion (a steady change on every
frame) from counting as cuts, which is why PySceneDetect recommends it for that.

The floor is relative to the video's own frame-to-frame change: a cut must be at least ``noise`` times the
median change of all its frames (and at least ``min_content``). A still or a slide deck has a median of 0,
so a faint cut counts; footage that moves, flickers or is grainy (a median of 3 to 40) needs a real cut.
A fixed floor cannot serve both: 2 missed 8% of the stills' cuts and still took a brightness flicker
(median change 3) for three cuts.

A shot longer than ``max_shot`` seconds is cut into equal parts, so a long take still gives segments a
query can land in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import MissingDependency
from .probe import MediaFileError, MediaInfo, clock
from .windows import fixed_windows

ADAPTIVE = 3.0  #: how many times the change around it a frame's change must be (AdaptiveDetector's default)
MIN_CONTENT = 0.2  #: the least change of a cut (AdaptiveDetector's default is 15: it misses clip-art cuts)
NOISE = 3.0  #: how many times the video's median frame-to-frame change a cut must be
MAX_SHOT = 60.0  #: the longest segment, in seconds
MIN_SHOT = 0.6  #: the shortest shot, in seconds (ContentDetector's min_scene_len, in frames at the video's rate)


def detect_shots(
    info: MediaInfo,
    *,
    adaptive: float = ADAPTIVE,
    min_content: float = MIN_CONTENT,
    noise: float = NOISE,
    max_shot: float = MAX_SHOT,
) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each shot of the video at ``info.path``."""
    try:
        from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, StatsManager, open_video
    except ImportError as exc:
        raise MissingDependency("scenedetect", "media") from exc
    try:
        video = open_video(info.path)
        fps = float(video.frame_rate) or 25.0
        stats = StatsManager()
        manager = SceneManager(stats_manager=stats)
        detector = AdaptiveDetector(
            adaptive_threshold=adaptive,
            min_scene_len=max(1, round(MIN_SHOT * fps)),
            min_content_val=min_content,
            weights=ContentDetector.Components(delta_hue=1.0, delta_sat=1.0, delta_lum=1.0, delta_edges=1.0),
        )
        manager.add_detector(detector)
        frames = manager.detect_scenes(video, show_progress=False)
        change = [_content(stats, f) for f in range(frames)]
        floor = noise * float(np.median(change)) if change else 0.0
        scenes: list[tuple[float, float]] = []
        for start, end in manager.get_scene_list():
            if scenes and _content(stats, start) < floor:  # not a cut for this video: the shot goes on
                scenes[-1] = (scenes[-1][0], float(end.seconds))
            else:
                scenes.append((float(start.seconds), float(end.seconds)))
    except MediaFileError:
        raise
    except Exception as exc:  # OpenCV/PyAV raise their own types for an undecodable stream
        raise MediaFileError(
            info.path, f"its pictures could not be read ({type(exc).__name__}: {exc})", "re-encode it with ffmpeg"
        ) from exc
    if not scenes:
        scenes = [(0.0, info.duration)]
    return split_long(scenes, max_shot)


def _content(stats: Any, frame: Any) -> float:
    """The AdaptiveDetector's change score of ``frame`` (0 where it has none, e.g. the first frame)."""
    (value,) = stats.get_metrics(frame, ["content_val"])
    return float(value or 0.0)


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
