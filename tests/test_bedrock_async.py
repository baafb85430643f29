"""Nova Multimodal Embeddings' asynchronous API for long audio and video: every request checked against the
documented shape with botocore's Stubber (StartAsyncInvoke, GetAsyncInvoke, and the S3 calls), and end to
end against the local fake runtime endpoint with moto's S3 server, both on 127.0.0.1."""

from __future__ import annotations

import io
import json
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine, Item
from xmodal.encoders import Content, create_encoder
from xmodal.errors import ConfigError, ValidationError

boto3 = pytest.importorskip("boto3")
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

MODEL = "amazon.nova-2-multimodal-embeddings-v1:0"
STAGING = "s3://media-bucket/xmodal"
RATE = 8000
PURPOSES = {
    "GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "IMAGE_RETRIEVAL", "VIDEO_RETRIEVAL",
    "DOCUMENT_RETRIEVAL", "AUDIO_RETRIEVAL", "CLASSIFICATION", "CLUSTERING",
}  # fmt: skip


def tones(path: Path, freqs: list[int], seconds: float) -> Path:
    """A mono 16-bit WAV of ``seconds`` of each tone in turn."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = np.concatenate([0.5 * np.sin(2 * np.pi * f * t) for f in freqs])
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def documented_segmented(model_input: dict[str, Any], medium: str) -> dict[str, Any]:
    """Fail unless ``model_input`` is a documented SEGMENTED_EMBEDDING request of one ``medium``; its media object."""
    assert set(model_input) == {"taskType", "segmentedEmbeddingParams"}
    assert model_input["taskType"] == "SEGMENTED_EMBEDDING"
    params = model_input["segmentedEmbeddingParams"]
    assert params["embeddingPurpose"] in PURPOSES and params["embeddingDimension"] in (256, 384, 1024, 3072)
    assert set(params) == {"embeddingPurpose", "embeddingDimension", medium}
    media = params[medium]
    keys = {"format", "source", "segmentationConfig"} | ({"embeddingMode"} if medium == "video" else set())
    assert set(media) == keys
    assert media["format"] in (("mp3", "wav", "ogg") if medium == "audio" else ("mp4", "mov", "mkv", "webm"))
    assert set(media["source"]) == {"s3Location"} and media["source"]["s3Location"]["uri"].startswith("s3://")
    seconds = media["segmentationConfig"]["durationSeconds"]
    assert set(media["segmentationConfig"]) == {"durationSeconds"} and isinstance(seconds, int) and 1 <= seconds <= 30
    if medium == "video":
        assert media["embeddingMode"] in ("AUDIO_VIDEO_COMBINED", "AUDIO_VIDEO_SEPARATE")
    return dict(media)


class Stubbed:
    """Stubbed bedrock-runtime and S3 clients for one segmented job; records what was sent."""

    def __init__(self) -> None:
        creds = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.runtime = boto3.client("bedrock-runtime", **creds)
        self.s3 = boto3.client("s3", **creds)
        self.rt_stub, self.s3_stub = Stubber(self.runtime), Stubber(self.s3)
        self.starts: list[dict[str, Any]] = []
        self.runtime.meta.events.register("provide-client-params.bedrock-runtime.StartAsyncInvoke", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.starts.append(params)

    def job(
        self, vectors: list[list[float]], seconds: int, statuses: tuple[str, ...] = ("InProgress", "Completed")
    ) -> None:
        arn = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123"
        out = "s3://media-bucket/xmodal/outputs/tok/abc123/"
        self.s3_stub.add_client_error("head_object", "404", http_status_code=404)
        self.s3_stub.add_response("put_object", {}, {"Bucket": "media-bucket", "Key": ANY, "Body": ANY})
        expected = {"modelId": MODEL, "modelInput": ANY, "outputDataConfig": ANY, "clientRequestToken": ANY}
        self.rt_stub.add_response("start_async_invoke", {"invocationArn": arn}, expected)
        for status in statuses:
            answer: dict[str, Any] = {"invocationArn": arn, "modelArn": MODEL, "status": status,
                                      "submitTime": "2026-01-01T00:00:00Z",
                                      "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": out}}}  # fmt: skip
            if status == "Failed":
                answer["failureMessage"] = "the video could not be decoded"
            self.rt_stub.add_response("get_async_invoke", answer, {"invocationArn": arn})
        if statuses[-1] != "Completed":
            return
        result_key = "xmodal/outputs/tok/abc123/segmented-embedding-result.json"
        self.s3_stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": result_key}, {"Key": "xmodal/outputs/tok/abc123/embedding-video.jsonl"}],
             "IsTruncated": False},
            {"Bucket": "media-bucket", "Prefix": "xmodal/outputs/tok/abc123/"},
        )  # fmt: skip
        summary = {"embeddingResults": [{"embeddingType": "VIDEO", "status": "SUCCESS",
                                         "outputFileUri": "s3://media-bucket/xmodal/outputs/tok/abc123/embedding-video.jsonl"}]}  # fmt: skip
        lines = [
            {"embedding": v, "status": "SUCCESS",
             "segmentMetadata": {"segmentIndex": i, "segmentStartSeconds": i * seconds,
                                 "segmentEndSeconds": (i + 1) * seconds}}
            for i, v in enumerate(vectors)
        ]  # fmt: skip
        lines.append({"status": "FAILURE", "segmentMetadata": {"segmentIndex": len(vectors)}})
        for payload in (json.dumps(summary), "\n".join(json.dumps(line) for line in lines)):
            raw = payload.encode()
            self.s3_stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(raw), len(raw))},
                                      {"Bucket": "media-bucket", "Key": ANY})  # fmt: skip

    def encoder(self, **options: Any) -> Any:
        self.rt_stub.activate()
        self.s3_stub.activate()
        return create_encoder("bedrock-nova", client=self.runtime, s3_client=self.s3, s3_uri=STAGING,
                              backoff=0.001, poll=0.001, **options)  # fmt: skip


@pytest.mark.parametrize("medium,suffix,fmt", [("video", ".mp4", "mp4"), ("video", ".webm", "webm"),
                                               ("audio", ".mp3", "mp3"), ("audio", ".wav", "wav")])  # fmt: skip
@pytest.mark.parametrize("dim,requested", [(256, 256), (1024, 1024), (500, 1024)])
def test_a_segmented_job_has_the_documented_shape_and_its_segments_come_back(
    tmp_path: Path, medium: str, suffix: str, fmt: str, dim: int, requested: int
) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, requested)).tolist()
    api = Stubbed()
    api.job(vectors, seconds=7)
    recording = tmp_path / f"talk{suffix}"
    recording.write_bytes(b"not decoded here: the service reads it from S3")
    enc = api.encoder(dim=dim, segment_seconds=7)
    segments = enc.segments(recording, medium)
    start = api.starts[0]
    media = documented_segmented(start["modelInput"], medium)
    assert media["format"] == fmt and media["segmentationConfig"] == {"durationSeconds": 7}
    assert media["source"]["s3Location"]["uri"].startswith(f"{STAGING}/inputs/")
    params = start["modelInput"]["segmentedEmbeddingParams"]
    assert params["embeddingPurpose"] == "GENERIC_INDEX" and params["embeddingDimension"] == requested
    out = start["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
    assert set(start["outputDataConfig"]) == {"s3OutputDataConfig"} and out.startswith(f"{STAGING}/outputs/")
    assert [(s.index, s.start, s.end) for s in segments] == [(0, 0.0, 7.0), (1, 7.0, 14.0), (2, 14.0, 21.0)]
    for seg, raw in zip(segments, vectors, strict=True):
        want = np.asarray(raw[:dim]) / np.linalg.norm(raw[:dim])
        assert seg.vector.shape == (dim,) and float(seg.vector @ want) >= 0.999
    api.rt_stub.assert_no_pending_responses()
    api.s3_stub.assert_no_pending_responses()
    usage = enc.usage()
    assert usage["async_jobs"] == 1 and usage["segments"] == 3 and usage["requests"] == 3  # start + 2 polls


@pytest.mark.parametrize("purpose,expected", [("query", "AUDIO_RETRIEVAL"), ("clustering", "CLUSTERING")])
def test_a_segmented_query_uses_the_purpose_of_what_the_index_holds(
    tmp_path: Path, purpose: str, expected: str
) -> None:
    api = Stubbed()
    api.job([[1.0] + [0.0] * 255], seconds=5)
    enc = api.encoder(dim=256)
    enc.set_repository(["audio"])
    recording = tmp_path / "q.ogg"
    recording.write_bytes(b"x")
    assert len(enc.segments(recording, "audio", purpose)) == 1
    assert api.starts[0]["modelInput"]["segmentedEmbeddingParams"]["embeddingPurpose"] == expected


def test_a_failed_job_and_a_missing_staging_location_name_the_fix(tmp_path: Path) -> None:
    recording = tmp_path / "long.mp4"
    recording.write_bytes(b"x")
    api = Stubbed()
    api.job([], seconds=5, statuses=("InProgress", "Failed"))
    with pytest.raises(ValidationError, match="failed: the video could not be decoded"):
        api.encoder().segments(recording, "video")
    bare = Stubbed()
    bare.rt_stub.activate()
    enc = create_encoder("bedrock-nova", client=bare.runtime)
    with pytest.raises(ConfigError, match="s3_uri=s3://BUCKET/PREFIX"):
        enc.segments(recording, "video")
    with pytest.raises(ConfigError, match="not an S3 location"):
        create_encoder("bedrock-nova", client=bare.runtime, s3_uri="media-bucket/x")
    with pytest.raises(ConfigError, match="segment_seconds=45 is over 30"):
        create_encoder("bedrock-nova", client=bare.runtime, segment_seconds=45)
    with pytest.raises(ValidationError, match="convert it to one of"):
        Stubbed().encoder().segments(tmp_path / "long.flac", "audio")


def test_a_short_recording_goes_inline_to_invoke_model(tmp_path: Path) -> None:
    api = Stubbed()
    bodies: list[dict[str, Any]] = []
    api.runtime.meta.events.register(
        "provide-client-params.bedrock-runtime.InvokeModel",
        lambda params, **_: bodies.append(json.loads(params["body"])),
    )
    raw = json.dumps({"embeddings": [{"embeddingType": "AUDIO", "embedding": [1.0] * 1024}]}).encode()
    api.rt_stub.add_response(
        "invoke_model", {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}
    )
    enc = api.encoder()
    clip = tones(tmp_path / "clip.wav", [440], 3.0)
    assert enc.encode_documents([Content(media={"audio": clip})]).shape == (1, 1024)
    params = bodies[0]["singleEmbeddingParams"]
    assert bodies[0]["taskType"] == "SINGLE_EMBEDDING" and set(params["audio"]) == {"format", "source"}
    assert params["audio"]["format"] == "wav" and set(params["audio"]["source"]) == {"bytes"}
    assert enc.usage()["async_jobs"] == 0


def test_end_to_end_against_the_fake_runtime_and_moto_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("moto")
    from tests.fake_bedrock_server import Runtime, fake_bedrock, moto_s3
    from xmodal.encoders.backends.bedrock_nova_segments import add_recording

    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    long = tones(tmp_path / "three-tones.wav", [220, 440, 880], 15.0)  # 45 s: over the synchronous limit
    short = tones(tmp_path / "beep.wav", [660], 4.0)
    flac = tmp_path / "chirp.flac"  # a format Nova does not take: decoded to WAV before it is sent
    wav = tones(tmp_path / "chirp.wav", [550], 4.0)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(flac)], check=True)
    with moto_s3() as s3_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_url)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="media-bucket")
        runtime = Runtime(throttle_first=1, s3_endpoint=s3_url)
        with fake_bedrock(runtime) as url:
            enc = create_encoder("bedrock-nova", dim=256, region="us-east-1", endpoint_url=url, backoff=0.001,
                                 poll=0.01, s3_uri=STAGING, segment_seconds=15)  # fmt: skip
            with Engine.open(tmp_path / "idx", encoder=enc, extensions=[]) as engine:
                report = add_recording(engine, "talk", long, "audio")
                assert not report.rejected and len(report.added) == 4
                added = engine.add([Item.create("beep", media={"audio": str(short)}),
                                    Item.create("chirp", media={"audio": str(flac)})])  # fmt: skip
                assert added.added == ["beep", "chirp"], added.rejected
                chirp = engine.search("tone 550 hz", mode="dense", k=1)
                hits = engine.search("tone 440 hz", mode="dense", k=3)
                grouped = engine.search("tone 880 hz", mode="dense", k=5, group="parent")
                beep = engine.search("tone 660 hz", mode="dense", k=1)
                info = engine.info()
    assert hits.items[0].id == "talk#t15" and hits.items[0].parent == "talk"
    assert (hits.items[0].span.start, hits.items[0].span.end) == (15.0, 30.0)
    assert grouped.items[0].id == "talk#t30" and len({i.parent or i.id for i in grouped.items}) == len(grouped.items)
    assert beep.items[0].id == "beep" and chirp.items[0].id == "chirp"
    starts = [b for p, b in zip(runtime.paths, runtime.bodies, strict=True) if p == "/async-invoke"]
    # the first request was throttled and retried with the same body and clientRequestToken: one job ran
    assert len(starts) == 2 and starts[0] == starts[1] and len(runtime.jobs) == 1
    media = documented_segmented(starts[0]["modelInput"], "audio")
    assert media["format"] == "wav" and media["segmentationConfig"] == {"durationSeconds": 15}
    assert len(runtime.polls) == 2  # InProgress, then Completed
    assert info["encoder_usage"]["async_jobs"] == 1 and info["encoder_usage"]["segments"] == 3
    assert info["encoder"]["s3_uri"] == STAGING and "secret-example" not in json.dumps(info["encoder"])
