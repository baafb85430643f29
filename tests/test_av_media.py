"""Audio and video pieces (issue 14): probing and refusing bad files, decoding, fixed windows, offline
speech-to-text with word times, Chromaprint fingerprints and their similarity, shot detection, and the
block-wise hearing of spans that keeps the spans before a truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.av_clips import encode, need_tools, run, speak, talk, video
from xmodal.av.decode import RATE, decode_audio, frame_jpeg
from xmodal.av.fingerprint import (
    DUPLICATE_THRESHOLD,
    fingerprint,
    from_attribute,
    similarities,
    similarity,
    to_attribute,
)
from xmodal.av.hearing import Failed, Heard, blocks, hear
from xmodal.av.probe import MAX_SECONDS_ENV, MediaFileError, probe
from xmodal.av.shots import detect_shots, split_long
from xmodal.av.speech import Transcriber, word_error_rate
from xmodal.av.windows import Word, fixed_windows, join_words, words_between
from xmodal.errors import ValidationError


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_tools()
    folder = tmp_path_factory.mktemp("clips")
    wav = talk(folder)
    out = {"wav": wav}
    out["mp3"] = encode(wav, folder / "talk.mp3", "-b:a", "64k")
    out["ogg"] = encode(wav, folder / "talk.ogg")
    out["flac"] = encode(wav, folder / "talk.flac")
    out["m4a"] = encode(wav, folder / "talk.m4a", "-c:a", "aac")
    out["mkv"] = encode(wav, folder / "talk.mkv", "-c:a", "libvorbis")
    return out


def test_fixed_windows_cover_the_time_line_with_overlap() -> None:
    assert fixed_windows(70.0, 30.0, 10.0) == [(0.0, 30.0), (20.0, 50.0), (40.0, 70.0)]
    assert fixed_windows(12.0, 30.0, 10.0) == [(0.0, 12.0)]
    assert fixed_windows(0.0) == []
    for duration in (1.0, 29.9, 30.0, 31.0, 599.5):
        spans = fixed_windows(duration, 30.0, 10.0)
        assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(duration)
        assert all(b - a <= 30.0 for a, b in spans)
        assert all(nxt[0] < cur[1] for cur, nxt in zip(spans, spans[1:], strict=False))  # they overlap
    with pytest.raises(ValueError):
        fixed_windows(10.0, 5.0, 5.0)


def test_words_fall_in_one_window_by_their_middle() -> None:
    words = [Word(" blue", 1.0, 1.4), Word(" whale", 29.8, 30.4), Word(" krill", 31.0, 31.5)]
    assert join_words(words_between(words, 0.0, 30.0)) == "blue"
    assert join_words(words_between(words, 30.0, 60.0)) == "whale krill"


def test_blocks_group_spans_and_long_shots_are_cut() -> None:
    spans = fixed_windows(1500.0, 30.0, 10.0)
    groups = blocks(spans, 600.0)
    assert [len(g) for g in groups] == [30, 30, 15] and sum(groups, []) == spans
    assert split_long([(0.0, 10.0), (10.0, 150.0)], 60.0) == [
        (0.0, 10.0),
        (10.0, 56.667),
        (56.667, 103.333),
        (103.333, 150.0),
    ]


def test_word_error_rate() -> None:
    assert word_error_rate("The blue whale.", "the blue whale") == 0.0
    assert word_error_rate("the blue whale", "the big blue wail") == pytest.approx(2 / 3)
    assert word_error_rate("", "") == 0.0


@pytest.mark.parametrize("kind", ["wav", "mp3", "ogg", "flac", "m4a", "mkv"])
def test_every_format_probes_and_decodes(clips: dict[str, Path], kind: str) -> None:
    info = probe(clips[kind])
    samples = decode_audio(info)
    assert info.has_audio and not info.has_video
    assert 14.0 < info.duration < 20.0
    assert abs(len(samples) / RATE - info.duration) < 0.2
    assert samples.dtype == np.float32 and 0.05 < float(np.abs(samples).max()) <= 1.0


def test_bad_files_are_refused_naming_the_file_and_the_fix(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    lying = tmp_path / "notes.wav"
    lying.write_text("this is a text file, not a recording\n")
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "cut.mp3"
    truncated.write_bytes(clips["mp3"].read_bytes()[: clips["mp3"].stat().st_size // 3])
    odd = tmp_path / "odd.wav"  # a WAV whose codec tag no decoder knows
    data = bytearray(clips["wav"].read_bytes())
    at = data.index(b"fmt ") + 8
    data[at : at + 2] = (0x3412).to_bytes(2, "little")
    odd.write_bytes(bytes(data))
    cases = {
        empty: "is empty",
        lying: "not a readable audio or video file",
        noise: "not a readable audio or video file",
        odd: "codec ffmpeg cannot decode",
        tmp_path / "missing.ogg": "no such file",
    }
    for path, problem in cases.items():
        with pytest.raises(MediaFileError) as caught:
            probe(path)
        assert str(path) in str(caught.value) and problem in str(caught.value)
        assert caught.value.fix
    with pytest.raises(MediaFileError, match="truncated"):
        decode_audio(probe(truncated))
    with pytest.raises(MediaFileError, match="has no video stream"):
        probe(clips["mp3"], need="video")
    with pytest.raises(MediaFileError, match=r"longer than the limit of 0:00:10.*XMODAL_MAX_MEDIA_SECONDS"):
        probe(clips["mp3"], limit=10.0)
    monkeypatch.setenv(MAX_SECONDS_ENV, "5")
    with pytest.raises(MediaFileError, match="longer than the limit"):
        probe(clips["wav"])


def test_fingerprints_find_a_re_encoded_copy_and_not_another_sound(clips: dict[str, Path], tmp_path: Path) -> None:
    original = decode_audio(probe(clips["wav"]))
    other = speak(
        tmp_path / "other.wav", "Most of the time, glaciers move slowly down the valley under their own weight."
    )
    copy = decode_audio(probe(clips["mp3"]))
    fp, fp_copy = fingerprint(original), fingerprint(copy)
    fp_trimmed = fingerprint(copy[int(1.5 * RATE) :] * 0.5)  # 1.5 s trimmed, 6 dB quieter
    fp_other = fingerprint(decode_audio(probe(other)))
    assert len(fp) > 80
    assert similarity(fp, fp_copy) >= DUPLICATE_THRESHOLD
    assert similarity(fp, fp_trimmed) >= DUPLICATE_THRESHOLD
    assert similarity(fp, fp_other) < DUPLICATE_THRESHOLD - 0.1
    print(similarity(fp, fp_copy), similarity(fp, fp_trimmed), similarity(fp, fp_other))
    assert np.array_equal(from_attribute(to_attribute(fp)), fp)
    many = [fp_copy, fp_trimmed, fp_other, fp[:5]]
    assert similarities(fp, many).tolist() == pytest.approx([similarity(fp, other) for other in many])
    assert similarity(fp, fp[:5]) == 0.0  # too short to compare
    assert all(len(part) <= 1000 for part in to_attribute(fp))


def test_an_english_only_model_refuses_another_language() -> None:
    with pytest.raises(ValidationError, match="English only"):
        Transcriber().transcribe(np.zeros(RATE, np.float32), language="fr")


def test_hearing_keeps_the_spans_before_a_truncation(clips: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(clips["mp3"].read_bytes()[: clips["mp3"].stat().st_size // 2])
    info = probe(cut)  # the MP3's header still announces the whole length
    parts = list(hear(info, fixed_windows(info.duration, 4.0, 1.0), transcriber=None, block=5.0))
    heard = [p for p in parts if isinstance(p, Heard)]
    failed = [p for p in parts if isinstance(p, Failed)]
    assert heard and failed and heard[0].start == 0.0
    assert all(f.start > h.start for f in failed for h in heard)
    assert "truncated" in failed[-1].problem and failed[-1].fix


def test_faint_cuts_between_small_drawings_count_and_a_flicker_does_not(tmp_path: Path) -> None:
    """A small drawing on white replaced by another is a change of well under 2 (the old fixed floor); a
    brightness flicker over a photo changes every frame by more than that, and is not a cut."""
    need_tools()
    from PIL import Image, ImageDraw

    images = []
    for i in range(3):
        path = tmp_path / f"d{i}.png"
        image = Image.new("RGB", (320, 240), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        draw.ellipse((140 + 4 * i, 100, 160 + 4 * i, 120 + 6 * i), outline=(0, 0, 0), width=1 + i % 2)
        image.save(path)
        images.append(path)
    clip = video(tmp_path, images, ["one", "two", "three"], seconds=2.0)
    assert [round(a, 1) for a, _ in detect_shots(probe(clip, need="video"))] == [0.0, 2.0, 4.0]
    photo = tmp_path / "photo.png"
    texture = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(texture).resize((320, 240), Image.Resampling.BICUBIC).save(photo)
    flicker = tmp_path / "flicker.mp4"
    filters = "eq=brightness='0.3*sin(t*2)':eval=frame,format=yuv420p"
    run(
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
        str(photo),
        "-vf",
        filters,
        "-t",
        "8",
        "-c:v",
        "libx264",
        str(flicker),
    )
    assert detect_shots(probe(flicker, need="video")) == [(0.0, 8.0)]


def test_shots_are_found_at_the_cuts_and_frames_are_jpeg(tmp_path: Path) -> None:
    need_tools()
    from PIL import Image

    images = []
    for i, color in enumerate([(200, 30, 30), (20, 160, 40), (30, 40, 200)]):
        path = tmp_path / f"c{i}.png"
        image = Image.new("RGB", (64, 48), color)
        image.paste((255, 255, 255), (8 * i, 8, 8 * i + 20, 30))
        image.save(path)
        images.append(path)
    clip = video(tmp_path, images, ["one", "two", "three"], seconds=2.0)
    info = probe(clip, need="video")
    shots = detect_shots(info)
    assert [round(a, 1) for a, _ in shots] == [0.0, 2.0, 4.0]
    jpeg = frame_jpeg(str(clip), 3.0)
    assert jpeg[:2] == b"\xff\xd8"
    with Image.open(__import__("io").BytesIO(jpeg)) as frame:
        assert frame.size == (320, 240)
        assert frame.convert("RGB").getpixel((300, 200))[1] > 120  # the green shot's frame
