"""Speaker turns (issue 14): a recording assembled from two espeak-ng voices taking turns is cut where the
voice changes (within 0.5 s), each turn numbered by its speaker; the ``segments`` split option (``xmodal add
--audio-segments turns``) selects turns instead of fixed windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.av_clips import need_tools, speak
from xmodal.av.decode import RATE, decode_audio
from xmodal.av.probe import probe
from xmodal.av.turns import speaker_turns, turn_spans
from xmodal.ingest.prepare import Rejection
from xmodal.records import Item
from xmodal.splitters import SplitOptions, split_file

pytest.importorskip("resemblyzer", reason="needs the audio extra (pip install --no-deps resemblyzer)")
pytest.importorskip("webrtcvad", reason="needs the audio extra (webrtcvad-wheels)")

SENTENCES = [
    "The blue whale is the largest animal that has ever lived.",
    "Volcanic eruptions can change the weather of the whole world.",
    "A lighthouse guides ships past the rocks at night.",
    "Honey bees dance to tell the others where the flowers are.",
    "Rivers carry sand and stones down to the sea.",
    "The moon pulls the tides twice a day.",
]
VOICES = ("en-us", "en-us+f3")  # a male and a female voice (espeak's male voices are too alike: see av.turns)


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """A WAV of the sentences said by the two voices in turn, and the true times the voice changes."""
    need_tools()
    folder = tmp_path_factory.mktemp("turns")
    parts = [decode_audio(probe(speak(folder / f"{i}.wav", s, VOICES[i % 2]))) for i, s in enumerate(SENTENCES)]
    changes = [float(t) for t in np.cumsum([len(p) / RATE for p in parts])[:-1]]
    out = folder / "dialogue.wav"
    import wave

    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.concatenate(parts) * 32767).astype("<i2").tobytes())
    return out, changes


def test_turns_change_where_the_voice_does(dialogue: tuple[Path, list[float]]) -> None:
    path, truth = dialogue
    samples = decode_audio(probe(path))
    turns = speaker_turns(samples)
    assert len(turns) == len(SENTENCES), turns
    found = [t.start for t in turns[1:]]
    assert all(abs(a - b) <= 0.5 for a, b in zip(found, truth, strict=True)), (found, truth)
    assert turns[0].start == 0.0 and turns[-1].end == pytest.approx(len(samples) / RATE, abs=0.01)
    assert all(a.end == b.start for a, b in zip(turns, turns[1:], strict=False))  # they cover the recording
    assert [t.speaker for t in turns] == [0, 1, 0, 1, 0, 1]  # two speakers, told apart and recognised again
    assert len(turn_spans(samples, longest=2.0)) > len(turns)  # a turn longer than longest is cut


def test_the_split_option_selects_turns_or_windows(dialogue: tuple[Path, list[float]]) -> None:
    path, truth = dialogue
    quick = {"transcribe": False, "clips": False}
    turns = list(split_file(path, id="d", options=SplitOptions(extra={**quick, "segments": "turns"})))
    spans = [(i.span.start, i.span.end) for i in turns if isinstance(i, Item) and i.span is not None]
    assert len(spans) == len(SENTENCES) and all(abs(s[0] - t) <= 0.5 for s, t in zip(spans[1:], truth, strict=True))
    windows = list(split_file(path, id="d", options=SplitOptions(extra={**quick, "window": 8.0, "overlap": 2.0})))
    assert [i.span.start for i in windows if isinstance(i, Item) and i.span is not None] == [0.0, 6.0, 12.0]
    bad = list(split_file(path, id="d", options=SplitOptions(extra={**quick, "segments": "speakers"})))
    assert isinstance(bad[0], Rejection) and "'windows' or 'turns'" in bad[0].reason
