"""A long recording added the ordinary way (``xmodal add``, ``POST /items``, :meth:`Engine.add`) to a
``bedrock-nova`` index becomes a parent and one segment item per time range from Nova's one segmented job, as
:func:`~xmodal.encoders.backends.bedrock_nova_segments.add_recording` does; a short one stays one item. Against
the local fake runtime endpoint and moto's S3 server, both on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_bedrock_async import STAGING, documented_segmented, tones
from xmodal import Engine, Item

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from tests.fake_bedrock_server import Runtime, fake_bedrock, moto_s3  # noqa: E402


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Runtime, str]]:
    """The fake runtime (its URL in the AWS chain's endpoint variable) and moto's S3 with the staging bucket."""
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto_s3() as s3_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="media-bucket")
        runtime = Runtime(s3_endpoint=s3_url)
        with fake_bedrock(runtime) as url:
            monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url)
            yield runtime, url


def _starts(runtime: Runtime) -> list[dict[str, Any]]:
    return [b for p, b in zip(runtime.paths, runtime.bodies, strict=True) if p == "/async-invoke"]


def test_xmodal_add_of_a_long_recording_adds_its_segments(
    aws: tuple[Runtime, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xmodal.cli import main

    runtime, _ = aws
    tones(tmp_path / "talk.wav", [220, 440, 880], 15.0)  # 45 s: over the synchronous limit
    tones(tmp_path / "beep.wav", [660], 4.0)
    catalog = tmp_path / "catalog.jsonl"
    rows = [
        {"id": "talk", "title": "Three tones", "media": {"audio": "talk.wav"}, "attributes": {"room": "a"}},
        {"id": "beep", "media": {"audio": "beep.wav"}},
    ]
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows))
    index = str(tmp_path / "index")
    opts = ["--encoder-option", "region=us-east-1", "--encoder-option", f"s3_uri={STAGING}"]
    opts += ["--encoder-option", "segment_seconds=15", "--dim", "256"]
    assert main(["--index", index, "init", "--encoder", "bedrock-nova", *opts]) == 0
    fast = ["--encoder-option", "poll=0.01", "--encoder-option", "backoff=0.001"]
    assert main(["--index", index, "add", str(catalog), *fast]) == 0
    capsys.readouterr()
    assert main(["--index", index, "search", "tone 440 hz", "--mode", "dense", "--json", *fast]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert main(["--index", index, "search", "tone 880 hz", "--mode", "dense", "--group", "parent", "--json",
                 *fast]) == 0  # fmt: skip
    grouped = json.loads(capsys.readouterr().out)["hits"]
    assert main(["--index", index, "search", "tone 660 hz", "--mode", "dense", "--json", *fast]) == 0
    beep = json.loads(capsys.readouterr().out)["hits"]
    with Engine.open(index, encoder_options={"endpoint_url": aws[1]}) as engine:
        talk = engine.get("talk")
        segments = [engine.get(f"talk#t{s}") for s in (0, 15, 30)]
        vectors = engine.get_many(["talk", "talk#t0", "talk#t15", "talk#t30"], with_vectors=True)
        count = len(engine)
    assert count == 5  # the recording, its 3 segments and the short one
    assert talk.attributes == {"room": "a", "segments": 3, "duration": 45.0} and talk.parent is None
    assert [(s.parent, s.span.start, s.span.end) for s in segments] == [  # type: ignore[union-attr]
        ("talk", 0.0, 15.0),
        ("talk", 15.0, 30.0),
        ("talk", 30.0, 45.0),
    ]
    assert all(s.media["audio"] == talk.media["audio"] for s in segments)  # a hit plays the recording
    assert segments[1].title == "Three tones — 0:15–0:30"
    assert hits[0]["id"] == "talk#t15" and grouped[0]["id"] == "talk#t30" and beep[0]["id"] == "beep"
    assert len({h.get("parent") or h["id"] for h in grouped}) == len(grouped)
    # one segmented job for the long recording, sent in the documented shape; the short one went inline
    starts = _starts(runtime)
    assert len(starts) == 1 and len(runtime.jobs) == 1
    media = documented_segmented(starts[0]["modelInput"], "audio")
    assert media["segmentationConfig"] == {"durationSeconds": 15}
    assert starts[0]["modelInput"]["segmentedEmbeddingParams"]["embeddingPurpose"] == "GENERIC_INDEX"
    inline = [b for p, b in zip(runtime.paths, runtime.bodies, strict=True) if p.endswith("/invoke")]
    assert sum("audio" in b.get("singleEmbeddingParams", {}) for b in inline) == 1  # beep only
    # the recording's vector is the renormalised mean of its segments'
    by_id = {item.id: vecs["audio"] for item, vecs in zip(vectors.items, vectors.vectors, strict=True)}
    mean = np.mean([by_id[f"talk#t{s}"] for s in (0, 15, 30)], axis=0)
    assert float(by_id["talk"] @ (mean / np.linalg.norm(mean))) >= 0.9999


def test_rest_add_and_a_shorter_recording_added_again_replaces_the_segments(
    aws: tuple[Runtime, str], tmp_path: Path
) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from xmodal.encoders import create_encoder
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    runtime, url = aws
    long = tones(tmp_path / "long.wav", [220, 440, 880, 550], 15.0)  # 60 s: 4 segments
    shorter = tones(tmp_path / "shorter.wav", [330, 990, 770], 12.0)  # 36 s: 3 segments of 15, 15 and 6 s
    enc = create_encoder("bedrock-nova", dim=256, region="us-east-1", endpoint_url=url, backoff=0.001, poll=0.01,
                         s3_uri=STAGING, segment_seconds=15)  # fmt: skip
    key = "write-key-0001"
    engine = Engine.open(tmp_path / "idx", encoder=enc, extensions=[])
    app = create_app(engine, ServeConfig(keys=(ApiKey(key, frozenset({"read", "write"}), "writer"),)))
    try:
        with serve_in_thread(app) as base:
            item = {"id": "rec", "title": "Four tones", "media_base64": {"audio": _b64(long)}}
            added = httpx.post(f"{base}/items", json={"items": [item]}, headers={"X-API-Key": key}, timeout=120)
            assert added.status_code == 200, added.text
            first = {i.id: i for i in engine.scroll(limit=100).items}
            again = httpx.post(
                f"{base}/items",
                json={"items": [{**item, "media_base64": {"audio": _b64(shorter)}}]},
                headers={"X-API-Key": key},
                timeout=120,
            )
            assert again.status_code == 200, again.text
            second = {i.id: i for i in engine.scroll(limit=100).items}
            hit = engine.search("tone 990 hz", mode="dense", k=1).items[0]
        # a segment added by hand stays; the recording added again short enough for one vector loses its segments
        note = Item.create("rec-note", text="a note on the tones", parent="rec", span={"start": 3.0, "end": 4.0})
        assert engine.add([note]).added == ["rec-note"]
        beep = tones(tmp_path / "beep.wav", [660], 4.0)
        assert engine.add([Item.create("rec", title="One tone", media={"audio": str(beep)})]).added == ["rec"]
        third = {i.id: i for i in engine.scroll(limit=100).items}
        # a file a splitter cut into its own segments (its attribute 'splitter') is not segmented again
        split = Item.create("split", media={"audio": str(long)}, attributes={"splitter": "audio"})
        assert engine.add([split]).added == ["split"] and engine.count({"parent": "split"}) == 0
        # Engine.add straight away: an item whose recording Nova refuses is rejected alone
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF not really a wave file")
        report = engine.add([Item.create("bad", media={"audio": str(broken)}), Item.create("ok", text="plain")])
    finally:
        engine.close()
    assert sorted(first) == ["rec", "rec#t0", "rec#t15", "rec#t30", "rec#t45"]
    assert first["rec"].attributes == {"segments": 4, "duration": 60.0}
    assert sorted(second) == ["rec", "rec#t0", "rec#t15", "rec#t30"]  # rec#t45 went with the longer recording
    assert second["rec"].attributes == {"segments": 3, "duration": 36.0}
    assert second["rec#t30"].span.end == 36.0  # type: ignore[union-attr]
    assert hit.id == "rec#t15" and hit.parent == "rec"
    assert sorted(third) == ["rec", "rec-note"] and "segments" not in third["rec"].attributes
    assert len(_starts(runtime)) == 3  # the short recording went inline; the split file's one job: its mean
    assert report.added == ["ok"] and [r.where for r in report.rejected] == ["bad"]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")
