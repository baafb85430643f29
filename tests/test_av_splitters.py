"""The ``audio`` and ``video`` splitters end to end: a recording becomes a parent item and segments with
start/end seconds, indexed by what is said in them, so a text query finds the time where something is
said; a video's shots carry a key frame (the hit's thumbnail); bad files are rejected alone, naming the
file and the fix; deleting the recording deletes its segments."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.av_clips import encode, need_tools, talk, video
from xmodal import Engine, Item, Query
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.ingest.prepare import Rejection
from xmodal.splitters import SplitOptions, split_bytes, split_file


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_tools()
    folder = tmp_path_factory.mktemp("media")
    out = {"mp3": encode(talk(folder), folder / "talk.mp3", "-b:a", "64k")}
    images = []
    for i, color in enumerate([(200, 40, 40), (40, 170, 60)]):
        path = folder / f"shot{i}.png"
        Image.new("RGB", (64, 48), color).save(path)
        images.append(path)
    out["mp4"] = video(folder, images, ["A red sunset over the harbour.", "Green meadows full of sheep."], 3.0)
    return out


def items_of(found: list[Item | Rejection]) -> tuple[Item, list[Item]]:
    items = [f for f in found if isinstance(f, Item)]
    assert not [f for f in found if isinstance(f, Rejection)]
    return items[0], items[1:]


def test_a_recording_is_found_at_the_time_something_is_said(media: dict[str, Path], tmp_path: Path) -> None:
    options = SplitOptions(extra={"window": 8.0, "overlap": 2.0})
    parent, segments = items_of(list(split_file(media["mp3"], id="talk.mp3", options=options)))
    assert parent.id == "talk.mp3" and parent.attributes["splitter"] == "audio"
    assert 14.0 < float(parent.attributes["duration"]) < 20.0 and parent.attributes["fingerprint"]
    spans = [(s.span.start, s.span.end) for s in segments if s.span is not None]
    assert spans[0] == (0.0, 8.0) and spans[1][0] == 6.0 and all(s.parent == "talk.mp3" for s in segments)
    assert all(s.attributes.get("fingerprint") for s in segments)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        report = engine.add([parent, *segments])
        assert not report.rejected
        kept = engine.get("talk.mp3")
        assert kept.modality == "audio+text" and str(kept.media["audio"]).endswith(".mp3")
        assert engine.media.path(str(kept.media["audio"])).read_bytes() == media["mp3"].read_bytes()  # playable
        hit = engine.search(Query(text="volcanic eruptions change the weather", k=3)).items[0]
        assert hit.parent == "talk.mp3" and hit.span is not None and hit.span.start is not None
        assert hit.span.start >= 6.0  # the second sentence, said after 6 s of silence
        assert "weather" in hit.text.lower()
        first = engine.search(Query(text="the largest animal", k=3)).items[0]
        assert first.span is not None and first.span.start == 0.0
        engine.delete(["talk.mp3"])
        assert engine.search(Query(text="volcanic eruptions change the weather", k=3)).items == ()


def test_video_shots_carry_a_key_frame_and_the_speech_of_their_sound(media: dict[str, Path], tmp_path: Path) -> None:
    parent, shots = items_of(list(split_bytes(media["mp4"].read_bytes(), "show.mp4")))
    assert parent.attributes["splitter"] == "video" and parent.attributes["video_codec"] == "h264"
    assert parent.media["video"] == media["mp4"].read_bytes()  # an upload: the bytes are kept
    thumb = parent.media["image"]
    assert isinstance(thumb, bytes) and thumb[:2] == b"\xff\xd8"  # the first shot's middle frame
    assert [(s.span.start, s.span.end) for s in shots if s.span] == [(0.0, 3.0), (3.0, 6.0)]
    frame = shots[1].media["image"]
    assert isinstance(frame, bytes)
    with Image.open(io.BytesIO(frame)) as image:
        assert image.convert("RGB").getpixel((160, 120))[1] > 120  # the green shot's middle frame
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        assert not engine.add([parent, *shots]).rejected
        assert engine.get("show.mp4").modality == "audio+image+video+text"  # its sound track: its audio medium
        hit = engine.search(Query(text="sheep in a meadow", k=2)).items[0]
        assert hit.id == shots[1].id and hit.span is not None and hit.span.start == 3.0
        assert str(hit.media["image"]).startswith("media/")  # the key frame, kept as the hit's thumbnail


def test_bad_recordings_are_rejected_alone(media: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    lying = tmp_path / "song.mp3"
    lying.write_text("not music at all\n")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(media["mp3"].read_bytes()[:3000])
    for path, problem in [(empty, "empty"), (lying, "content is not"), (cut, "truncated")]:
        found = list(split_file(path))
        assert len(found) == 1 and isinstance(found[0], Rejection), found
        assert str(path.name) in found[0].where and problem in found[0].reason
    too_long = list(split_file(media["mp3"], options=SplitOptions(max_seconds=5.0)))
    assert isinstance(too_long[0], Rejection) and "longer than the limit" in too_long[0].reason
    french = list(split_file(media["mp3"], attributes={"language": "fr"}))
    assert len(french) == 1 and isinstance(french[0], Rejection) and "English only" in french[0].reason


def test_the_cli_adds_a_folder_of_recordings_and_finds_a_shot(
    media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    (folder / "show.mp4").write_bytes(media["mp4"].read_bytes())
    (folder / "silence.ogg").write_bytes(b"")
    (folder / "song.mp3").write_text("not music at all\n")
    index = str(tmp_path / "idx")
    assert main(["--index", index, "--encoder", "hashing", "add", "-q", "--json", str(folder)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 3  # the video and its two shots
    assert sorted(Path(r["where"]).name for r in report["rejected"]) == ["silence.ogg", "song.mp3"]
    assert main(["--index", index, "search", "sheep in a meadow", "-k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)["hits"][0]
    assert hit["parent"] == "show.mp4" and hit["span"] == {"start": 3.0, "end": 6.0}
    assert hit["thumbnail_url"].endswith("/thumbnail")
