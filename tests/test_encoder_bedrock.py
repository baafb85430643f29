"""The ``bedrock-nova`` backend: every request body checked against the documented Nova Multimodal Embeddings
shape with botocore's Stubber (no network), retries on throttling, and clear errors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Item
from xmodal.encoders import Content, Purpose, create_encoder
from xmodal.errors import ConfigError, ValidationError

boto3 = pytest.importorskip("boto3")
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

MODEL = "amazon.nova-2-multimodal-embeddings-v1:0"
# The documented request schema (docs.aws.amazon.com/nova/latest/userguide/embeddings-schema.html).
PURPOSES = {
    "GENERIC_INDEX", "GENERIC_RETRIEVAL", "TEXT_RETRIEVAL", "IMAGE_RETRIEVAL", "VIDEO_RETRIEVAL",
    "DOCUMENT_RETRIEVAL", "AUDIO_RETRIEVAL", "CLASSIFICATION", "CLUSTERING",
}  # fmt: skip


def documented(body: dict[str, Any]) -> None:
    """Fail unless ``body`` is a valid synchronous request of the documented schema (one text or one image)."""
    assert set(body) == {"taskType", "singleEmbeddingParams"} and body["taskType"] == "SINGLE_EMBEDDING"
    params = body["singleEmbeddingParams"]
    assert params["embeddingPurpose"] in PURPOSES and params["embeddingDimension"] in (256, 384, 1024, 3072)
    media = set(params) - {"embeddingPurpose", "embeddingDimension"}
    assert len(media) == 1 and media <= {"text", "image"}
    if "text" in params:
        assert set(params["text"]) == {"truncationMode", "value"}
        assert params["text"]["truncationMode"] in ("START", "END", "NONE") and isinstance(params["text"]["value"], str)
    else:
        image = params["image"]
        assert set(image) == {"format", "detailLevel", "source"} and set(image["source"]) == {"bytes"}
        assert image["format"] in ("png", "jpeg", "gif", "webp")
        assert image["detailLevel"] in ("STANDARD_IMAGE", "DOCUMENT_IMAGE")
        assert Image.open(io.BytesIO(base64.b64decode(image["source"]["bytes"]))).format.lower() == image["format"]


class Nova:
    """A stubbed bedrock-runtime client that records the request bodies."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "bedrock-runtime", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
        )
        self.stub = Stubber(self.client)
        self.bodies: list[dict[str, Any]] = []
        self.client.meta.events.register("provide-client-params.bedrock-runtime.InvokeModel", self._record)
        self.rng = np.random.default_rng(0)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies.append(json.loads(params["body"]))

    def respond(self, size: int, vector: list[float] | None = None) -> list[float]:
        vector = vector if vector is not None else self.rng.standard_normal(size).tolist()
        raw = json.dumps({"embeddings": [{"embeddingType": "TEXT", "embedding": vector}]}).encode()
        expected = {"modelId": MODEL, "body": ANY, "contentType": "application/json", "accept": "application/json"}
        response = {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}
        self.stub.add_response("invoke_model", response, expected)
        return vector

    def fail(self, code: str, status: int) -> None:
        self.stub.add_client_error("invoke_model", service_error_code=code, service_message=f"{code} here",
                                   http_status_code=status)  # fmt: skip

    def encoder(self, **options: Any) -> Any:
        self.stub.activate()
        return create_encoder("bedrock-nova", client=self.client, backoff=0.001, **options)


def _png() -> Image.Image:
    image = Image.open(io.BytesIO(_encode(Image.new("RGB", (20, 10), (10, 200, 30)), "PNG")))
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("dim,requested", [(256, 256), (384, 384), (1024, 1024), (3072, 3072), (500, 1024)])
def test_every_dimension_is_requested_natively_or_truncated(dim: int, requested: int) -> None:
    nova = Nova()
    vector = nova.respond(requested)
    got = nova.encoder(dim=dim).encode_documents([Content(text="a blue teapot")])
    documented(nova.bodies[0])
    assert nova.bodies[0]["singleEmbeddingParams"]["embeddingDimension"] == requested
    want = np.asarray(vector[:dim]) / np.linalg.norm(vector[:dim])
    assert got.shape == (1, dim) and float(got[0] @ want) >= 0.999
    nova.stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    "purpose,holds,expected",
    [
        (Purpose.DOCUMENT, ["text"], "GENERIC_INDEX"),
        (Purpose.QUERY, ["text"], "TEXT_RETRIEVAL"),
        (Purpose.QUERY, ["image"], "IMAGE_RETRIEVAL"),
        (Purpose.QUERY, ["page"], "DOCUMENT_RETRIEVAL"),
        (Purpose.QUERY, ["video+text"], "VIDEO_RETRIEVAL"),
        (Purpose.QUERY, ["audio"], "AUDIO_RETRIEVAL"),
        (Purpose.QUERY, ["image+text"], "GENERIC_RETRIEVAL"),
        (Purpose.QUERY, ["text", "image"], "GENERIC_RETRIEVAL"),
        (Purpose.CLASSIFICATION, ["text"], "CLASSIFICATION"),
        (Purpose.CLUSTERING, ["text"], "CLUSTERING"),
    ],
)
@pytest.mark.parametrize("medium", ["text", "png", "jpeg"])
def test_every_purpose_and_medium_has_the_documented_shape(
    purpose: Purpose, holds: list[str], expected: str, medium: str
) -> None:
    nova = Nova()
    nova.respond(384)
    enc = nova.encoder(dim=384, detail_level="DOCUMENT_IMAGE" if holds == ["page"] else "STANDARD_IMAGE")
    enc.set_repository(holds)
    if medium == "text":
        content = Content(text="a blue teapot")
    else:
        content = Content(image=Image.open(io.BytesIO(_encode(_png(), medium.upper()))))
    enc.encode([content], purpose)
    body = nova.bodies[0]
    documented(body)
    params = body["singleEmbeddingParams"]
    assert params["embeddingPurpose"] == expected
    if medium == "text":
        assert params["text"] == {"truncationMode": "END", "value": "a blue teapot"}
    else:
        assert params["image"]["format"] == medium
        assert params["image"]["detailLevel"] == ("DOCUMENT_IMAGE" if holds == ["page"] else "STANDARD_IMAGE")


def test_throttling_then_success_is_retried_and_counted() -> None:
    nova = Nova()
    nova.fail("ThrottlingException", 429)
    nova.fail("ServiceUnavailableException", 503)
    nova.respond(1024)
    enc = nova.encoder()
    assert enc.encode_queries([Content(text="teapot")]).shape == (1, 1024)
    assert enc.usage() == {"requests": 3, "texts": 1, "images": 0, "characters": 6, "retries": 2,
                           "recordings": 0, "async_jobs": 0, "segments": 0}  # fmt: skip


def test_a_throttle_storm_and_refusals_give_clear_errors() -> None:
    nova = Nova()
    for _ in range(3):
        nova.fail("ThrottlingException", 429)
    with pytest.raises(ConfigError, match="kept failing after 3 tries.*lower --encoder-option concurrency"):
        nova.encoder(retries=3).encode_documents([Content(text="x")])
    cases = [
        ("AccessDeniedException", 403, ConfigError, "bedrock:InvokeModel.*Model access"),
        ("ExpiredTokenException", 403, ConfigError, "refresh them"),
        ("ResourceNotFoundException", 404, ConfigError, "--encoder-option model_id"),
        ("ValidationException", 400, ValidationError, "ValidationException.*check the text's length"),
    ]
    for code, status, error, message in cases:
        nova = Nova()
        nova.fail(code, status)
        with pytest.raises(error, match=message):
            nova.encoder().encode_documents([Content(text="x")])


def test_bad_settings_name_the_fix() -> None:
    nova = Nova()
    with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 3072.*--dim 3072"):
        nova.encoder(dim=4096)
    with pytest.raises(ConfigError, match="query_purpose='RANKING' is not one of auto, TEXT_RETRIEVAL"):
        nova.encoder(query_purpose="RANKING")
    with pytest.raises(ConfigError, match="unknown purpose 'ranking'"):
        nova.encoder().encode([Content(text="x")], "ranking")
    nova = Nova()
    nova.respond(1024, [float("nan")] * 1024)
    with pytest.raises(ValidationError, match="NaN"):
        nova.encoder().encode_documents([Content(text="x")])


def test_an_index_embeds_items_for_the_index_and_queries_for_what_it_holds(tmp_path: Path) -> None:
    nova = Nova()
    for _ in range(3):
        nova.respond(256)
    enc = nova.encoder(dim=256)
    with Engine.open(tmp_path / "idx", encoder=enc, extensions=[]) as engine:
        engine.add([Item.create("a", text="a blue teapot"), Item.create("b", text="a red shoe")])
        engine.search("teapot", mode="dense")
        info = engine.info()
    purposes = [b["singleEmbeddingParams"]["embeddingPurpose"] for b in nova.bodies]
    assert purposes == ["GENERIC_INDEX", "GENERIC_INDEX", "TEXT_RETRIEVAL"]
    assert info["encoder"]["model_id"] == MODEL and "test" not in json.dumps(info["encoder"])
    assert info["encoder_usage"]["requests"] == 3


def test_cli_init_add_search_against_a_local_runtime_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fake_bedrock_server import Runtime, fake_bedrock
    from xmodal.cli import main

    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    catalog = tmp_path / "catalog.jsonl"
    texts = ["a red running shoe", "a blue teapot", "green garden hose"]
    catalog.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    index = str(tmp_path / "index")
    runtime = Runtime(throttle_first=1)
    with fake_bedrock(runtime) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url)
        opts = ["--encoder-option", "region=us-east-1", "--encoder-option", "backoff=0.001", "--dim", "256"]
        assert main(["--index", index, "init", "--encoder", "bedrock-nova", *opts]) == 0
        assert main(["--index", index, "add", str(catalog), "--encoder-option", "backoff=0.001"]) == 0
        capsys.readouterr()
        assert main(["--index", index, "search", "a blue teapot", "--mode", "dense", "--json"]) == 0
        hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["id"] == "p1"
    for body in runtime.bodies:
        documented(body)
    assert {p for p in runtime.paths} == {f"/model/{MODEL}/invoke"}
    purposes = [b["singleEmbeddingParams"]["embeddingPurpose"] for b in runtime.bodies[1:]]
    assert purposes == ["GENERIC_INDEX"] * 3 + ["TEXT_RETRIEVAL"]  # the first request was throttled and retried
    settings = (Path(index) / "store.sqlite").read_bytes()
    assert b"secret-example" not in settings and b"AKIDEXAMPLE" not in settings
