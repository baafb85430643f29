"""A local stand-in for the Bedrock runtime's endpoints (127.0.0.1, a port of its own).

- ``POST /model/{modelId}/invoke`` (``InvokeModel``) answers a Nova Multimodal Embeddings response, after
  throttling the first ``throttle_first`` requests. A text's vector is the hashing encoder's of the text; an
  inline WAV's is the hashing encoder's of ``"tone <F> hz"``, F its dominant frequency (to 10 Hz), so a text
  query "tone 440 hz" finds the recording (or segment) of a 440 Hz tone.
- ``POST /async-invoke`` (``StartAsyncInvoke``) takes a ``SEGMENTED_EMBEDDING`` job: it reads the WAV from S3
  (``s3_endpoint``: a local moto server), cuts it into ``durationSeconds`` segments, and writes
  ``segmented-embedding-result.json`` and ``embedding-audio.jsonl`` under ``<s3Uri>/<invocation id>/``, as the
  service does. ``GET /async-invoke/{arn}`` (``GetAsyncInvoke``) says ``InProgress`` on the first poll of a job
  and ``Completed`` after.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` or the encoder's ``endpoint_url`` option.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from xmodal.encoders import Content, HashingEncoder

from .fake_http import JSONHandler, serving

ARN = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/"


@dataclass
class Runtime:
    throttle_first: int = 0
    s3_endpoint: str | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: list[str] = field(default_factory=list)


def tone_text(samples: np.ndarray, rate: int) -> str:
    """``"tone <F> hz"``: the dominant frequency of ``samples``, to 10 Hz."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freq = float(np.fft.rfftfreq(len(samples), 1.0 / rate)[int(np.argmax(spectrum[1:])) + 1])
    return f"tone {int(round(freq / 10.0) * 10)} hz"


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as handle:
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    return samples, rate


def _vector(text: str, size: int) -> list[float]:
    vector: list[float] = HashingEncoder(dim=size, native_dim=size).encode([Content(text=text)])[0].tolist()
    return vector


@contextmanager
def fake_bedrock(runtime: Runtime) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the endpoint URL."""
    lock = threading.Lock()

    def s3() -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=runtime.s3_endpoint, region_name="us-east-1",
            aws_access_key_id="fake", aws_secret_access_key="fake",
        )  # fmt: skip

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            path = unquote(self.path)
            with lock:
                runtime.bodies.append(body)
                runtime.paths.append(path)
                throttled = len(runtime.bodies) <= runtime.throttle_first
            if throttled:
                return self._send(429, {"message": "Too many requests"}, "ThrottlingException")
            if path == "/async-invoke":
                return self._start(body)
            params = body["singleEmbeddingParams"]
            size = params["embeddingDimension"]
            if "audio" in params:
                samples, rate = _wav(base64.b64decode(params["audio"]["source"]["bytes"]))
                text = tone_text(samples, rate)
            else:
                text = params["text"]["value"]
            self._send(200, {"embeddings": [{"embeddingType": "TEXT", "embedding": _vector(text, size)}]})

        def do_GET(self) -> None:
            path = unquote(self.path)
            if not path.startswith("/async-invoke/"):
                return self._send(404, {"message": "no such route"}, "ResourceNotFoundException")
            arn = path[len("/async-invoke/") :]
            with lock:
                runtime.polls.append(arn)
                job = runtime.jobs.get(arn)
                if job is not None:
                    job["polls"] += 1
            if job is None:
                return self._send(404, {"message": f"no job {arn}"}, "ResourceNotFoundException")
            status = "InProgress" if job["polls"] == 1 else "Completed"
            self._send(200, {
                "invocationArn": arn, "modelArn": job["modelArn"], "status": status,
                "submitTime": "2026-01-01T00:00:00Z",
                "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job["output"]}},
            })  # fmt: skip

        def _start(self, body: dict[str, Any]) -> None:
            params = body["modelInput"]["segmentedEmbeddingParams"]
            audio = params["audio"]
            source = urlparse(audio["source"]["s3Location"]["uri"])
            client = s3()
            samples, rate = _wav(client.get_object(Bucket=source.netloc, Key=source.path.lstrip("/"))["Body"].read())
            step = int(audio["segmentationConfig"]["durationSeconds"] * rate)
            job_id = uuid.uuid4().hex[:12]
            out = urlparse(body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
            prefix = f"{out.path.strip('/')}/{job_id}"
            lines = []
            for index, first in enumerate(range(0, len(samples), step)):
                part = samples[first : first + step]
                line = {
                    "embedding": _vector(tone_text(part, rate), params["embeddingDimension"]),
                    "segmentMetadata": {
                        "segmentIndex": index,
                        "segmentStartSeconds": first / rate,
                        "segmentEndSeconds": (first + len(part)) / rate,
                    },
                    "status": "SUCCESS",
                }
                lines.append(json.dumps(line))
            jsonl = f"s3://{out.netloc}/{prefix}/embedding-audio.jsonl"
            client.put_object(Bucket=out.netloc, Key=f"{prefix}/embedding-audio.jsonl", Body="\n".join(lines).encode())
            result = {
                "sourceFileUri": audio["source"]["s3Location"]["uri"],
                "embeddingDimension": params["embeddingDimension"],
                "embeddingResults": [{"embeddingType": "AUDIO", "status": "SUCCESS", "outputFileUri": jsonl}],
            }
            client.put_object(Bucket=out.netloc, Key=f"{prefix}/segmented-embedding-result.json",
                              Body=json.dumps(result).encode())  # fmt: skip
            arn = ARN + job_id
            with lock:
                runtime.jobs[arn] = {"polls": 0, "modelArn": body["modelId"], "output": f"s3://{out.netloc}/{prefix}/"}
            self._send(200, {"invocationArn": arn})

        def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
            self.send_json(status, payload, {"x-amzn-ErrorType": error} if error is not None else None)

    with serving(Handler) as url:
        yield url


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a port of its own); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
