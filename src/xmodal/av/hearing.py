"""The sound of each span of a file: its transcript and fingerprint, decoded and transcribed in blocks.

Spans (fixed windows of a recording, shots of a video) are grouped into blocks of about :data:`BLOCK`
seconds; each block's sound is decoded once (``ffmpeg -ss``), transcribed once, and cut into its spans.
Memory stays bounded whatever the file's length, and a block that fails (undecodable sound, a failed
transcription, a file truncated there) fails only its own spans, each named by its time; the others are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ValidationError
from .decode import RATE, Samples, decode_audio
from .fingerprint import Fingerprint, fingerprint
from .probe import MediaFileError, MediaInfo, clock
from .speech import Transcriber
from .windows import Word, join_words, words_between

BLOCK = 600.0  #: seconds of sound decoded and transcribed at a time
Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Heard:
    """A span's sound: what is said in it, its fingerprint (empty when too short to fingerprint) and its
    samples (``sound``, at :data:`~xmodal.av.decode.RATE`; None when not kept)."""

    start: float
    end: float
    text: str
    fingerprint: Fingerprint
    sound: Samples | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """A span whose sound could not be used, why, and the fix."""

    start: float
    end: float
    problem: str
    fix: str


def blocks(spans: Sequence[Span], block: float = BLOCK) -> list[list[Span]]:
    """``spans`` (in time order) grouped so that each group starts within ``block`` seconds of its first."""
    groups: list[list[Span]] = []
    for span in spans:
        if groups and span[0] - groups[-1][0][0] < block:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def hear(
    info: MediaInfo,
    spans: Sequence[Span],
    *,
    transcriber: Transcriber | None,
    language: str | None = None,
    block: float = BLOCK,
    item: str | None = None,
    progress: Callable[[str, int], object] | None = None,
) -> Iterator[Heard | Failed]:
    """A :class:`Heard` or :class:`Failed` per span of ``spans``, in order (see the module's docstring)."""
    if transcriber is not None:
        transcriber.check_language(language, item=item)  # refused before any work
    for group in blocks(spans, block):
        yield from _hear_block(info, group, transcriber, language, item, progress)


def _hear_block(
    info: MediaInfo,
    group: list[Span],
    transcriber: Transcriber | None,
    language: str | None,
    item: str | None,
    progress: Callable[[str, int], object] | None,
) -> Iterator[Heard | Failed]:
    start, end = group[0][0], max(e for _, e in group)
    try:
        samples = decode_audio(info, start=start, seconds=end - start, item=item, check_length=False)
    except MediaFileError as exc:
        yield from (Failed(a, b, exc.problem, exc.fix) for a, b in group)
        return
    _tell(progress, "decode", len(group))
    heard_until = start + len(samples) / RATE
    words: list[Word] = []
    failure: Failed | None = None
    if transcriber is not None:
        try:
            said = transcriber.transcribe(samples, language=language, item=item)
            words = [Word(w.text, w.start + start, w.end + start) for w in said.words]
        except ValidationError:
            raise
        except Exception as exc:  # the model's own error on this block: its spans fail, the file goes on
            failure = Failed(start, end, f"transcription failed ({type(exc).__name__}: {exc})", "retry the file")
        _tell(progress, "transcribe", len(group))
    for a, b in group:
        if a >= heard_until - 0.05 and info.duration - heard_until > 1.0:
            yield Failed(
                a,
                b,
                f"has no sound after {clock(heard_until)} although it announces {clock(info.duration)} (truncated)",
                "give the complete file: re-copy or re-download it",
            )
        elif failure is not None:
            yield Failed(a, b, failure.problem, failure.fix)
        else:
            piece = samples[int((a - start) * RATE) : int((b - start) * RATE)]
            yield Heard(a, b, join_words(words_between(words, a, b)), fingerprint(piece), piece)


def _tell(progress: Callable[[str, int], object] | None, stage: str, n: int) -> None:
    if progress is not None:
        progress(stage, n)
