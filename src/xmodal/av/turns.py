"""Speaker turns: a recording cut where the voice changes, the alternative to fixed windows for speech.

1. Voices: Resemblyzer's speaker embedding of each :data:`WINDOW` seconds of sound every :data:`HOP` seconds
   (:meth:`~xmodal.encoders.audio_models.Resemblyzer.windows`, one batch through the model).
2. Change score at each time ``t`` (every 0.1 s): one minus the cosine between the mean voice of the windows
   wholly within :data:`CONTEXT` seconds before ``t`` and that of those wholly within it after ``t``.
3. Changes: the local maxima (over ±:data:`CONTEXT` seconds) scoring at least :data:`CHANGE`; each is moved to
   the middle of the nearest pause within :data:`SNAP` seconds, if any (WebRTC's voice activity detector,
   ``webrtcvad``, over 30 ms frames), where the voice changes in speech.
4. Turns: the spans between changes (the first from 0 s, the last to the end), each numbered by speaker (a
   turn whose mean voice is within :data:`SAME_SPEAKER` cosine of an earlier speaker's is that speaker's); a
   turn longer than ``longest`` seconds is cut into equal parts no longer than it.

Voices of one synthesiser can be too alike to tell apart: espeak-ng's male English voices are within 0.89 to
0.97 cosine of one another in Resemblyzer's space, its ``+f3`` female voice 0.64 to 0.70 from them, while one
voice's own sentences are 0.80 to 0.86 apart (measured on four sentences per voice). The model reads about
0.4 to 2 seconds of sound per second of CPU here, so turns cost more than fixed windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import MissingDependency
from .decode import RATE, Samples
from .shots import split_long

FRAME_MS = 30
WINDOW = 1.0  #: seconds of sound per voice embedding
HOP = 0.2  #: seconds between voice embeddings
CONTEXT = 1.0  #: seconds of voices compared on each side of a candidate change
CHANGE = 0.3  #: change score (1 - cosine) from which the voice changed
SNAP = 0.6  #: seconds: a change moves to the middle of a pause this near
MIN_PAUSE = 0.09  #: seconds of silence that make a pause
SAME_SPEAKER = 0.78  #: cosine of two turns' voices from which they are one speaker's
LONGEST = 30.0  #: seconds: a longer turn is cut into parts


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: int  #: the turn's speaker, numbered in order of appearance (same voice, same number)


def pauses(samples: Samples, rate: int = RATE, min_pause: float = MIN_PAUSE) -> list[tuple[float, float]]:
    """The silent stretches of at least ``min_pause`` seconds between voiced sound, in seconds."""
    try:
        import webrtcvad
    except ImportError as exc:
        raise MissingDependency("webrtcvad-wheels", "audio") from exc
    vad = webrtcvad.Vad(2)
    step = rate * FRAME_MS // 1000
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    voiced = [vad.is_speech(pcm[i : i + step].tobytes(), rate) for i in range(0, len(pcm) - step + 1, step)]
    out: list[tuple[float, float]] = []
    seconds = FRAME_MS / 1000
    run_start: int | None = None
    for i, v in enumerate([*voiced, True]):
        if not v and run_start is None:
            run_start = i
        elif v and run_start is not None:
            if run_start > 0 and i < len(voiced) and (i - run_start) * seconds >= min_pause:
                out.append((run_start * seconds, i * seconds))
            run_start = None
    return out


def change_scores(
    centres: npt.NDArray[np.float64], voices: npt.NDArray[np.float32], duration: float
) -> list[tuple[float, float]]:
    """``(t, score)`` every 0.1 s: 1 - cosine of the mean voices wholly before and wholly after ``t``."""
    half = WINDOW / 2
    out = []
    for t in np.arange(CONTEXT, duration - CONTEXT + 1e-9, 0.1):
        left = voices[(centres <= t - half) & (centres >= t - half - CONTEXT)]
        right = voices[(centres >= t + half) & (centres <= t + half + CONTEXT)]
        if len(left) and len(right):
            a, b = left.mean(axis=0), right.mean(axis=0)
            cos = float(a @ b / ((np.linalg.norm(a) * np.linalg.norm(b)) or 1.0))
            out.append((round(float(t), 3), 1.0 - cos))
    return out


def changes(scores: Sequence[tuple[float, float]], gaps: Sequence[tuple[float, float]]) -> list[float]:
    """The times the voice changes: peaks of ``scores`` (see the module's docstring), snapped to pauses."""
    found: list[float] = []
    for t, score in scores:
        near = [s for u, s in scores if abs(u - t) <= CONTEXT]
        if score >= CHANGE and score >= max(near) and not (found and t - found[-1] <= CONTEXT):
            found.append(t)
    snapped = []
    for t in found:
        middles = [(a + b) / 2 for a, b in gaps if abs((a + b) / 2 - t) <= SNAP]
        snapped.append(min(middles, key=lambda m: abs(m - t)) if middles else t)
    return sorted(set(snapped))


def speaker_turns(samples: Samples, rate: int = RATE, *, model: object = None) -> list[Turn]:
    """The turns of ``samples`` (mono float32 at ``rate``, 16 kHz for Resemblyzer), from 0 s to the end."""
    from ..encoders.audio_models import Resemblyzer

    duration = len(samples) / rate
    if duration <= 0:
        return []
    voice_model = model if isinstance(model, Resemblyzer) else Resemblyzer()
    centres, voices = voice_model.windows(samples, WINDOW, HOP)
    cuts = changes(change_scores(centres, voices, duration), pauses(samples, rate))
    edges = [0.0, *cuts, duration]
    speakers: list[npt.NDArray[np.float32]] = []
    turns = []
    for a, b in zip(edges, edges[1:], strict=False):
        inside = voices[(centres >= a) & (centres <= b)]
        voice = inside.mean(axis=0) if len(inside) else voices[int(np.argmin(np.abs(centres - (a + b) / 2)))]
        voice = voice / (np.linalg.norm(voice) or 1.0)
        known = [float(voice @ s) for s in speakers]
        if known and max(known) >= SAME_SPEAKER:
            speaker = int(np.argmax(known))
        else:
            speakers.append(voice)
            speaker = len(speakers) - 1
        turns.append(Turn(round(a, 3), round(b, 3), speaker))
    return turns


def turn_spans(samples: Samples, rate: int = RATE, longest: float = LONGEST) -> list[tuple[float, float]]:
    """The spans of :func:`speaker_turns`, each longer than ``longest`` seconds cut into parts."""
    return split_long([(t.start, t.end) for t in speaker_turns(samples, rate)], longest)
