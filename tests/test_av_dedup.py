"""``dedup`` finds audio and video near-duplicates by Chromaprint fingerprints (registered by ``xmodal.av``),
end to end: files added with ``xmodal add``, then ``xmodal dedup`` and ``POST /tasks/dedup``, each stating
the threshold it used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.av_clips import encode, need_tools, speak, talk, video
from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.splitters import SplitOptions, split_file
from xmodal.tasks import dedup
from xmodal.tasks.fingerprints import fingerprinters

OTHER = "A lighthouse guides ships past the rocks at night with its turning beam."


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tools()
    work, folder = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("files")
    source = talk(work)
    encode(source, folder / "talk.wav")
    # a copy: re-encoded to MP3 at 64 kb/s, 1 s trimmed off the start and 6 dB quieter
    encode(source, folder / "copy.mp3", "-ss", "1", "-af", "volume=-6dB", "-b:a", "64k")
    encode(speak(work / "other.wav", OTHER, "en-gb", 150), folder / "other.ogg", "-c:a", "libvorbis")
    images = []
    for i, color in enumerate([(200, 40, 40), (40, 170, 60)]):
        images.append(work / f"shot{i}.png")
        Image.new("RGB", (64, 48), color).save(images[-1])
    show = video(work, images, ["A red sunset over the harbour.", "Green meadows full of sheep."], 3.0)
    (folder / "show.mp4").write_bytes(show.read_bytes())
    encode(show, folder / "show-copy.mkv", "-c:v", "libx264", "-crf", "35", "-c:a", "libvorbis")
    path = tmp_path_factory.mktemp("idx") / "idx"
    quick = SplitOptions(extra={"transcribe": False})  # fingerprints need no transcript
    with Engine.open(path, encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        for file in sorted(folder.iterdir()):
            found = list(split_file(file, id=file.name, options=quick))
            assert all(isinstance(f, Item) for f in found), found
            assert not engine.add([f for f in found if isinstance(f, Item)]).rejected
    return path


def fingerprint_pairs(result: dict[str, object]) -> set[tuple[str, str, str]]:
    groups = result["groups"]
    assert isinstance(groups, list)
    return {
        (p["signal"], *sorted((p["a"], p["b"])))
        for g in groups
        for p in g["pairs"]
        if p["signal"] in ("audio", "video")
    }


#: the copies: the files, and their first segments (the same stretch of sound; a file is never paired with its
#: own segments). The videos pair by ``video``, the most specific medium they share.
EXPECTED = {
    ("audio", "copy.mp3", "talk.wav"),
    ("audio", "copy.mp3#t0", "talk.wav#t0"),
    ("video", "show-copy.mkv", "show.mp4"),
}


def test_av_registers_its_fingerprinters() -> None:
    found = fingerprinters()
    assert {"audio", "video"} <= set(found) and found["audio"].default_threshold == pytest.approx(0.83)


def test_cli_dedup_finds_audio_and_video_copies(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--index", str(index), "dedup", "--signals", "text", "--json"]) == 0  # text: the shots' frames
    # would pair as images too
    body = json.loads(capsys.readouterr().out)
    assert fingerprint_pairs(body) == EXPECTED
    stated = {t["signal"]: t for t in body["thresholds"]}
    assert stated["audio"]["source"] == "default" and stated["audio"]["duplicate_when"] == ">="
    # audio: 3 sound files, the 2 videos' sound tracks, 7 segments (one per sound file, two shots per video)
    assert body["compared"]["audio"] == 12 and body["compared"]["video"] == 2 and not body["unchecked"]
    assert main(["--index", str(index), "dedup", "--signals", "text", "--threshold", "audio=0.999"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "threshold audio >= 0.999 (given)" in lines and "threshold video >= 0.83" in " ".join(lines)
    assert not any({"copy.mp3", "talk.wav"} <= set(line.split("\t")) for line in lines)  # not that close


def test_dedup_reads_the_bytes_when_no_fingerprint_is_kept(index: Path) -> None:
    with Engine.open(index) as engine:
        kept = dict(engine.get("copy.mp3").attributes)
        engine.update_attributes("copy.mp3", {k: v for k, v in kept.items() if k != "fingerprint"}, merge=False)
        try:
            result = dedup(engine, signals=("text",)).to_dict()
        finally:
            engine.update_attributes("copy.mp3", kept, merge=False)
        assert ("audio", "copy.mp3", "talk.wav") in fingerprint_pairs(result)


httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def test_rest_dedup_finds_them_too(index: Path) -> None:
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    config = ServeConfig(keys=(ApiKey("write-key-0001", frozenset({"write"}), "writer"),))
    with Engine.open(index) as engine, serve_in_thread(create_app(engine, config)) as url:
        answer = httpx.post(
            f"{url}/tasks/dedup",
            json={"signals": ["text"]},
            headers={"Authorization": "Bearer write-key-0001"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert fingerprint_pairs(body) == EXPECTED
    assert {t["signal"] for t in body["thresholds"]} >= {"audio", "video"}
