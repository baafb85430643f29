"""``dedup`` across audio and video, and of segments (issue 14): a video whose sound track copies an audio
file pairs with it under ``audio``; the same stretch of sound in two recordings pairs their segments; a file
is never paired with its own segments."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.av_clips import FIRST, SECOND, need_tools, run, speak
from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.splitters import SplitOptions, split_file
from xmodal.tasks import dedup

THIRD = "A lighthouse guides ships past the rocks at night with its turning beam."
FOURTH = "Honey bees dance to tell the others where the flowers are."


def joined(out: Path, first: Path, second: Path, *codec: str) -> Path:
    """``first`` then ``second``, each padded to 8 s (so 8 s windows hold one sentence each)."""
    graph = "[0]aresample=16000,apad=whole_dur=8[a];[1]aresample=16000,apad=whole_dur=8[b];[a][b]concat=n=2:v=0:a=1"
    run(
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-i",
        str(first),
        "-i",
        str(second),
        "-filter_complex",
        graph,
        "-ac",
        "1",
        *codec,
        str(out),
    )
    return out


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    need_tools()
    work = tmp_path_factory.mktemp("work")
    one, two = speak(work / "1.wav", FIRST), speak(work / "2.wav", SECOND, "en-gb", 150)
    three, four = speak(work / "3.wav", THIRD, "en-us+f3", 180), speak(work / "4.wav", FOURTH, "en-us+m3", 170)
    song = joined(work / "song.wav", one, two)
    mix = joined(work / "mix.mp3", four, two, "-b:a", "64k")  # its second half is the song's second half
    other = joined(work / "other.ogg", three, four, "-c:a", "libvorbis")
    picture = work / "still.png"
    Image.new("RGB", (64, 48), (30, 60, 200)).save(picture)
    clip = work / "clip.mp4"  # a still picture over the song, re-encoded to AAC, 6 dB quieter
    run("ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(picture), "-i", str(song), "-t", "16",
        "-af", "volume=-6dB", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip))  # fmt: skip
    options = SplitOptions(extra={"transcribe": False, "window": 8.0, "overlap": 0.0, "shots": "fixed"})
    with Engine.open(work / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        for file in (song, mix, other, clip):
            parts = list(split_file(file, id=file.name, options=options))
            assert all(isinstance(p, Item) for p in parts), parts
            assert not engine.add([p for p in parts if isinstance(p, Item)]).rejected
        return dedup(engine, signals=("text",)).to_dict()


def pairs(result: dict[str, object]) -> set[tuple[str, str, str]]:
    groups = result["groups"]
    assert isinstance(groups, list)
    return {(p["signal"], *sorted((p["a"], p["b"]))) for g in groups for p in g["pairs"] if p["signal"] != "text"}


def test_a_video_whose_sound_copies_an_audio_file_is_its_duplicate(found: dict[str, object]) -> None:
    got = pairs(found)
    assert ("audio", "clip.mp4", "song.wav") in got
    assert not {p for p in got if "other.ogg" in p}  # different sentences


def test_duplicate_segments_are_found_and_never_a_file_with_its_own(found: dict[str, object]) -> None:
    got = pairs(found)
    assert ("audio", "mix.mp3#t8", "song.wav#t8") in got  # the same sentence, re-encoded, in both
    assert ("audio", "mix.mp3#t0", "song.wav#t0") not in got  # different first sentences
    for _, a, b in got:
        assert a.split("#")[0] != b.split("#")[0], (a, b)  # no item with its own parent or sibling
        assert ("#" in a) == ("#" in b)  # files with files, segments with segments
    compared = found["compared"]
    assert isinstance(compared, dict) and compared["audio"] >= 4 + 8 and compared["video"] == 1
