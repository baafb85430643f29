"""Audio→audio search (issue 14): the ``audio`` encoder adds an ``audio`` vector kind (Resemblyzer or aiSFX,
offline) to another encoder; a recording, each segment of one and a video's sound track get an ``audio``
vector, and a query of sound alone finds what sounds like it. Real sounds: espeak-ng voices, sox tones and
noise, ffmpeg re-encodes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.av_clips import FIRST, SECOND, encode, need_tools, speak, talk, video
from xmodal.encoders import Content, create_encoder, kinds_of
from xmodal.engine import Engine
from xmodal.errors import ConfigError, ValidationError
from xmodal.media_loaders import media_loader
from xmodal.records import Item, Query
from xmodal.splitters import SplitOptions, split_file

pytest.importorskip("resemblyzer", reason="needs the audio extra (pip install --no-deps resemblyzer aisfx)")
pytest.importorskip("librosa", reason="needs the audio extra (librosa)")


def sox(path: Path, *synth: str) -> Path:
    if subprocess.run(["which", "sox"], capture_output=True).returncode != 0:
        pytest.skip("needs sox (apt-get install sox)")
    subprocess.run(["sox", "-n", "-r", "16000", "-b", "16", str(path), "synth", *synth], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_tools()
    folder = tmp_path_factory.mktemp("sounds")
    out = {
        "us": speak(folder / "us.wav", FIRST, "en-us", 165),
        "gb": speak(folder / "gb.wav", FIRST, "en-gb+f3", 150),
        "other": speak(folder / "other.wav", SECOND, "en-us+m3", 190),
        "tone": sox(folder / "tone.wav", "4", "sine", "440"),
        "noise": sox(folder / "noise.wav", "4", "pinknoise", "vol", "0.4"),
    }
    out["us_mp3"] = encode(out["us"], folder / "us.mp3", "-b:a", "64k")
    out["tone_ogg"] = encode(out["tone"], folder / "tone.ogg", "-c:a", "libvorbis")
    out["noise_trim"] = encode(out["noise"], folder / "noise_trim.wav", "-ss", "1.0")
    return out


def test_the_encoder_adds_an_audio_kind_in_a_space_of_its_own() -> None:
    encoder = create_encoder("audio", base="hashing")
    assert kinds_of(encoder) == {
        "text": ("text",),
        "image": ("image",),
        "combined": ("text", "image"),
        "audio": ("audio",),
    }
    assert encoder.dim == 384 and "audio" in encoder.modalities and encoder.separate_kinds == {"audio"}
    config = encoder.config()
    assert config["model"] == "resemblyzer" and config["base"]["name"] == "hashing"
    assert config["identity"]["packages"] == {"resemblyzer": "0.1.4"}
    again = create_encoder("audio", **{k: v for k, v in config.items() if k != "name"})  # how an index reopens
    assert again.config() == config
    raw = np.random.default_rng(0).standard_normal((2, 256)).astype(np.float32)
    placed = np.stack([encoder.place(r) for r in raw])  # zero-padded: cosines unchanged
    cos = float(raw[0] @ raw[1] / np.linalg.norm(raw[0]) / np.linalg.norm(raw[1]))
    assert float(placed[0] @ placed[1]) == pytest.approx(cos, abs=1e-5)
    small = create_encoder("audio", base="hashing", dim=64)  # fewer dimensions: a seeded orthogonal projection
    assert small.place(raw[0]).shape == (64,) and float(np.linalg.norm(small.place(raw[0]))) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="audio model 'clap'"):
        create_encoder("audio", base="hashing", model="clap")
    with pytest.raises(ConfigError, match="base must name another encoder"):
        create_encoder("audio", base="audio")
    with pytest.raises(ConfigError, match="max_seconds"):
        create_encoder("audio", base="hashing", max_seconds=0)


@pytest.mark.parametrize("model", ["resemblyzer", "aisfx"])
def test_a_re_encoded_copy_is_nearest_its_source(sounds: dict[str, Path], model: str) -> None:
    if model == "aisfx":
        pytest.importorskip("aisfx", reason="needs the audio extra (pip install --no-deps aisfx)")
    encoder = create_encoder("audio", base="hashing", model=model)
    names = ["us", "gb", "other", "tone", "noise"]
    loader = media_loader("audio")
    vectors = encoder.encode_documents([Content(media={"audio": loader.load(str(sounds[n])).content}) for n in names])
    assert vectors.shape == (5, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for query, source in [("us_mp3", "us"), ("tone_ogg", "tone"), ("noise_trim", "noise")]:
        q = encoder.encode_queries([Content(media={"audio": loader.load(str(sounds[query])).content})])[0]
        scores = vectors @ q
        assert names[int(np.argmax(scores))] == source, (query, dict(zip(names, scores.round(3), strict=True)))
    with pytest.raises(ValidationError, match="space of their own"):
        encoder.encode_queries([Content(text="a whale", media={"audio": loader.load(str(sounds["us"])).content})])


def test_an_index_finds_what_sounds_like_a_query(sounds: dict[str, Path], tmp_path: Path) -> None:
    options = {"base": "hashing"}
    with Engine.open(
        tmp_path / "idx", encoder="audio", encoder_options=options, index="exact", extensions=[]
    ) as engine:
        names = ["us", "gb", "other", "tone", "noise"]
        report = engine.add([Item.create(n, title=f"sound {n}", media={"audio": str(sounds[n])}) for n in names])
        assert not report.rejected and set(engine.vectors("tone")) == {"text", "audio"}
        assert "audio" in engine.vector_kinds()
        found = engine.search(Query(media={"audio": str(sounds["us_mp3"])}, k=5))  # audio alone: the audio kind
        assert found.hits.ids[0] == "us" and found.hits.scores[0] > 0.95 and len(found.hits.ids) == 5
        assert engine.search(Query(media={"audio": str(sounds["tone_ogg"])}, k=1)).hits.ids[0] == "tone"
        text = engine.search(Query(text="sound tone", k=5, target="text"))  # the text side is the base encoder's
        assert "tone" in text.hits.ids
    with Engine.open(tmp_path / "idx") as engine:  # reopens with the saved encoder config
        assert engine.encoder.config()["model"] == "resemblyzer"
        assert engine.search(Query(media={"audio": str(sounds["noise_trim"])}, k=1)).hits.ids[0] == "noise"


def test_segments_and_a_video_sound_track_get_audio_vectors(sounds: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    recording = talk(folder)  # two sentences, two voices, 6 s of silence between them
    options = SplitOptions(extra={"window": 6.0, "overlap": 0.0, "transcribe": False})
    found = list(split_file(recording, id="talk", options=options))
    parent, segments = found[0], found[1:]
    assert isinstance(parent, Item) and all(isinstance(s, Item) for s in segments)
    clips = [s.media["audio"] for s in segments if isinstance(s, Item)]
    assert all(isinstance(c, bytes) and c[:4] == b"OggS" for c in clips)
    assert sum(len(c) for c in clips if isinstance(c, bytes)) < recording.stat().st_size / 3  # Opus, 24 kb/s
    images = []
    for i, color in enumerate([(200, 40, 40), (40, 170, 60)]):
        images.append(folder / f"shot{i}.png")
        Image.new("RGB", (64, 48), color).save(images[-1])
    show = video(folder, images, [FIRST, SECOND], 3.0)
    shots = list(split_file(show, id="show", options=SplitOptions(extra={"transcribe": False})))
    assert not [s for s in shots if not isinstance(s, Item)]
    with Engine.open(tmp_path / "idx", encoder="audio", encoder_options={"base": "hashing"}, extensions=[]) as engine:
        report = engine.add([*found, *shots])  # type: ignore[list-item]
        assert not report.rejected, report.rejected
        assert engine.get("show").modality == "audio+image+video+text"
        assert {"audio", "image", "text"} <= set(engine.vectors("show"))  # the sound track's vector
        assert all("audio" in engine.vectors(s.id) for s in [*segments, *shots[1:]] if isinstance(s, Item))
        again = speak(folder / "again.wav", SECOND, "en-gb", 150)  # the second sentence, as talk.wav says it
        found_again = engine.search(Query(media={"audio": str(again)}, k=4, filters={"parent": "talk"}))
        top = engine.get(found_again.hits.ids[0])
        assert top.span is not None and top.span.start >= 6.0, found_again.hits.ids  # not the first sentence
    with Engine.open(tmp_path / "plain", encoder="hashing", extensions=[]) as engine:  # no audio kind: still kept
        tone = sox(folder / "tone.wav", "5", "sine", "300")
        report = engine.add(list(split_file(tone, id="tone", options=options)))  # type: ignore[arg-type]
        assert not report.rejected and len(report.added) == 2
        segment = next(i for i in report.added if i != "tone")
        assert engine.get(segment).modality == "audio+text"  # its title is embedded, as before


def test_rest_search_by_an_uploaded_sound(sounds: dict[str, Path], tmp_path: Path) -> None:
    import base64

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from xmodal.serve import ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    options = {"base": "hashing"}
    with Engine.open(
        tmp_path / "idx", encoder="audio", encoder_options=options, index="exact", extensions=[]
    ) as engine:
        names = ["us", "gb", "tone", "noise"]
        assert not engine.add([Item.create(n, title=n, media={"audio": str(sounds[n])}) for n in names]).rejected
        # decoding and encoding an uploaded sound costs real CPU, more on a loaded machine: this test checks the
        # search's answers, so anonymous CPU metering (tests/test_serve_limits.py) is off here
        config = ServeConfig(log_requests=False, anonymous_cpu=0.0, anonymous_total_cpu=0.0)
        with serve_in_thread(create_app(engine, config)) as url:
            data = sounds["us_mp3"].read_bytes()
            upload = httpx.post(f"{url}/search", files={"audio": ("q.mp3", data)}, data={"k": "2"}, timeout=120)
            assert upload.status_code == 200, upload.text
            assert [h["id"] for h in upload.json()["hits"]][0] == "us"
            body = {"audio_base64": base64.b64encode(sounds["tone_ogg"].read_bytes()).decode(), "k": 1}
            as_json = httpx.post(f"{url}/search", json=body, timeout=120)
            assert as_json.status_code == 200 and as_json.json()["hits"][0]["id"] == "tone"
            text_field = httpx.post(f"{url}/search", files={"k": (None, "1")}, data={"audio": "x.wav"}, timeout=60)
            assert text_field.status_code == 422 and "file part" in text_field.text
            mixed = httpx.post(f"{url}/search", json={**body, "text": "a tone"}, timeout=60)
            assert mixed.status_code == 422 and "space of their own" in mixed.text


def test_mcp_search_by_a_sound(sounds: dict[str, Path], tmp_path: Path) -> None:
    import base64

    pytest.importorskip("mcp")
    from tests.test_serve_mcp import structured
    from tests.test_serve_mcp_collection import call
    from xmodal.serve.mcp import build_mcp

    with Engine.open(
        tmp_path / "idx", encoder="audio", encoder_options={"base": "hashing"}, index="exact", extensions=[]
    ) as engine:
        names = ["us", "gb", "tone", "noise"]
        assert not engine.add([Item.create(n, title=n, media={"audio": str(sounds[n])}) for n in names]).rejected
        server = build_mcp(engine)
        sound = base64.b64encode(sounds["tone_ogg"].read_bytes()).decode()
        found = structured(call(server, "search", {"audio_base64": sound, "k": 1}))
        assert [h["data"]["id"] for h in found["hits"]] == ["tone"]
        mixed = call(server, "search", {"audio_base64": sound, "text": "a tone"})
        assert mixed.is_error and "space of their own" in str(mixed.content)
        broken = call(server, "search", {"audio_base64": "not base64!"})
        assert broken.is_error and "audio_base64" in str(broken.content)
