"""Long audio and video through Nova Multimodal Embeddings' asynchronous API (``StartAsyncInvoke``).

The synchronous ``InvokeModel`` takes at most 30 seconds of audio or video. A longer recording is put in an S3
staging location (``s3_uri``, e.g. ``s3://my-bucket/xmodal``, under ``inputs/<sha256>.<ext>``, uploaded once per
content), then embedded by one asynchronous job in the documented shape::

    start_async_invoke(
        modelId="amazon.nova-2-multimodal-embeddings-v1:0",
        modelInput={"taskType": "SEGMENTED_EMBEDDING",
                    "segmentedEmbeddingParams": {
                        "embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": 1024,
                        "audio": {"format": "wav", "source": {"s3Location": {"uri": "s3://.../inputs/<sha>.wav"}},
                                  "segmentationConfig": {"durationSeconds": 10}}}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/xmodal/outputs/<token>/"}},
        clientRequestToken="<token>")

(a video adds ``"embeddingMode": "AUDIO_VIDEO_COMBINED"``). ``GetAsyncInvoke`` is polled until the job is
``Completed`` or ``Failed``; the job writes ``segmented-embedding-result.json`` under its output location, whose
``embeddingResults`` name the JSONL files (one line per segment: ``embedding``, ``status`` and
``segmentMetadata`` with ``segmentIndex``, ``segmentStartSeconds`` and ``segmentEndSeconds``). Each segment
that succeeded becomes a :class:`SegmentVector` with its time range; a failed line is counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ...errors import ConfigError, ValidationError
from ..base import SegmentVector, Vectors, normalize

#: The synchronous API's limit on a recording; a longer one goes through the asynchronous API.
SYNC_SECONDS = 30.0
#: The largest recording sent inline (base64) to the synchronous API (its request limit is 25 MB, encoded).
SYNC_BYTES = 18 * 1024 * 1024
AUDIO_FORMATS = {".mp3": "mp3", ".wav": "wav", ".ogg": "ogg", ".oga": "ogg"}
VIDEO_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "mkv",
    ".webm": "webm",
    ".flv": "flv",
    ".mpeg": "mpeg",
    ".mpg": "mpg",
    ".wmv": "wmv",
    ".3gp": "3gp",
}
RESULT = "segmented-embedding-result.json"
EMBEDDING_MODE = "AUDIO_VIDEO_COMBINED"


def media_format(path: str | Path, medium: str) -> str:
    """Nova's ``format`` of a recording, from its suffix; a :class:`ValidationError` naming the ones it takes."""
    formats = AUDIO_FORMATS if medium == "audio" else VIDEO_FORMATS
    fmt = formats.get(Path(path).suffix.lower())
    if fmt is None:
        fmt_hint = next(iter(formats.values()))
        raise ValidationError(
            f"media.{medium}",
            f"{Path(path).name!r} is not a {medium} format Nova Multimodal Embeddings takes",
            f"convert it to one of {', '.join(sorted(set(formats.values())))} (ffmpeg -i IN OUT.{fmt_hint})",
        )
    return fmt


def media_params(medium: str, fmt: str, source: dict[str, Any]) -> dict[str, Any]:
    """The ``audio`` or ``video`` object of a request (``source``: ``{"bytes": b64}`` or ``{"s3Location": …}``)."""
    params: dict[str, Any] = {"format": fmt, "source": source}
    if medium == "video":
        params["embeddingMode"] = EMBEDDING_MODE
    return params


def segmented_input(medium: str, fmt: str, uri: str, purpose: str, dimension: int, seconds: int) -> dict[str, Any]:
    """The ``modelInput`` of a ``SEGMENTED_EMBEDDING`` job over the recording at ``uri``."""
    params = media_params(medium, fmt, {"s3Location": {"uri": uri}})
    params["segmentationConfig"] = {"durationSeconds": seconds}
    return {
        "taskType": "SEGMENTED_EMBEDDING",
        "segmentedEmbeddingParams": {"embeddingPurpose": purpose, "embeddingDimension": dimension, medium: params},
    }


def split_s3_uri(uri: str, setting: str = "s3_uri") -> tuple[str, str]:
    """``(bucket, key prefix)`` of ``s3://bucket/prefix``; a :class:`ConfigError` naming ``setting`` otherwise."""
    parsed = urlparse(str(uri))
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(
            f"encoder 'bedrock-nova': option {setting}={uri!r} is not an S3 location; "
            "give s3://BUCKET/PREFIX (a bucket the credentials may write to, in the model's region)"
        )
    return parsed.netloc, parsed.path.lstrip("/")


def mean_vector(vectors: list[Vectors]) -> Vectors:
    """The renormalised mean of ``vectors`` (a recording's vector from its segments')."""
    stacked = np.stack(vectors).astype(np.float64)
    mean: Vectors = normalize(stacked.mean(axis=0, keepdims=True))[0]
    return mean


def _join(prefix: str, *parts: str) -> str:
    return "/".join(p.strip("/") for p in (prefix, *parts) if p.strip("/"))


class AsyncJobs:
    """Runs segmented embedding jobs: upload the recording, start the job, poll it, read its segments back.

    ``api(operation, **kwargs)`` calls the bedrock-runtime client with the encoder's retries and error
    messages; ``s3`` is a boto3 S3 client; ``sleep`` waits between polls (tests pass their own)."""

    def __init__(
        self,
        api: Callable[..., Any],
        s3: Any,
        staging: str,
        model_id: str,
        *,
        poll: float = 5.0,
        wait: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.s3 = s3
        self.bucket, self.prefix = split_s3_uri(staging)
        self.model_id = model_id
        self.poll = poll
        self.wait = wait
        self.sleep = sleep
        self.failed_segments = 0

    # -- the job's steps ------------------------------------------------------------------------------
    def upload(self, path: Path, fmt: str) -> str:
        """The S3 URI of ``path``'s bytes in the staging location (uploaded unless already there)."""
        data = path.read_bytes()
        key = _join(self.prefix, "inputs", f"{hashlib.sha256(data).hexdigest()}.{fmt}")
        if not self._exists(key):
            self._s3("put_object", Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def start(self, model_input: dict[str, Any], token: str) -> tuple[str, str]:
        """Start a job; ``(invocation ARN, output location)``."""
        output = f"s3://{self.bucket}/{_join(self.prefix, 'outputs', token)}/"
        answer = self.api(
            "start_async_invoke",
            modelId=self.model_id,
            modelInput=model_input,
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": output}},
            clientRequestToken=token,
        )
        return str(answer["invocationArn"]), output

    def finish(self, arn: str, output: str) -> str:
        """Poll the job until it ends; its output location (as the service reports it) once ``Completed``."""
        deadline = time.monotonic() + self.wait
        while True:
            answer = self.api("get_async_invoke", invocationArn=arn)
            status = str(answer.get("status", ""))
            if status == "Completed":
                reported = answer.get("outputDataConfig", {}).get("s3OutputDataConfig", {}).get("s3Uri")
                return str(reported or output)
            if status == "Failed":
                raise ValidationError(
                    "media",
                    f"Nova's asynchronous job {arn} failed: {answer.get('failureMessage') or 'no reason given'}",
                    "check the recording's format and length (at most 2 hours) and the S3 permissions",
                )
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"encoder 'bedrock-nova': asynchronous job {arn} still {status or 'running'} after "
                    f"{self.wait:g} s; raise --encoder-option async_wait (a 2-hour video can take an hour)"
                )
            self.sleep(self.poll)

    def read(self, output: str) -> list[SegmentVector]:
        """The segments a finished job wrote under ``output``, by segment index."""
        bucket, prefix = split_s3_uri(output, "the job's output location")
        keys = [k for k in self._list(bucket, prefix) if k.rsplit("/", 1)[-1] == RESULT]
        if not keys:
            raise ValidationError(
                "response", f"the finished job wrote no {RESULT} under {output}", "check the S3 permissions"
            )
        summary = json.loads(self._get(bucket, sorted(keys)[-1]))
        segments: list[SegmentVector] = []
        for result in summary.get("embeddingResults", []):
            if result.get("status") != "SUCCESS" or not result.get("outputFileUri"):
                continue
            file_bucket, key = split_s3_uri(result["outputFileUri"], "outputFileUri")
            for line in self._get(file_bucket, key).decode("utf-8").splitlines():
                if line.strip():
                    segments.extend(self._segment(json.loads(line)))
        if not segments:
            raise ValidationError(
                "media", f"Nova embedded no segment of the recording ({self.failed_segments} failed)",
                "check the recording plays (ffprobe) and is in a format Nova takes",
            )  # fmt: skip
        return sorted(segments, key=lambda s: s.index)

    def _segment(self, line: dict[str, Any]) -> list[SegmentVector]:
        meta = line.get("segmentMetadata", {})
        vector = line.get("embedding")
        if line.get("status", "SUCCESS") != "SUCCESS" or not isinstance(vector, list):
            self.failed_segments += 1
            return []
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or not np.isfinite(array).all() or not array.any():
            self.failed_segments += 1
            return []
        return [
            SegmentVector(
                int(meta.get("segmentIndex", 0)),
                float(meta.get("segmentStartSeconds", 0.0)),
                float(meta.get("segmentEndSeconds", meta.get("segmentStartSeconds", 0.0))),
                normalize(array[None, :])[0],
            )
        ]

    # -- S3 -------------------------------------------------------------------------------------------
    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._s3_error(exc) from None

    def _list(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._s3("list_objects_v2", Bucket=bucket, Prefix=prefix, **extra)
            keys.extend(str(o["Key"]) for o in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return keys

    def _get(self, bucket: str, key: str) -> bytes:
        body: bytes = self._s3("get_object", Bucket=bucket, Key=key)["Body"].read()
        return body

    def _s3(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.s3, operation)(**kwargs)
        except ClientError as exc:
            raise self._s3_error(exc) from None

    def _s3_error(self, exc: Any) -> ConfigError:
        error = exc.response.get("Error", {})
        return ConfigError(
            f"encoder 'bedrock-nova': S3 refused {exc.operation_name} in s3://{self.bucket}/{self.prefix} "
            f"({error.get('Code')}: {error.get('Message')}); check --encoder-option s3_uri names a bucket that "
            "exists in the model's region and that the credentials may read and write (s3:GetObject, "
            "s3:PutObject, s3:ListBucket), and that Bedrock may too"
        )

    # -- the whole job --------------------------------------------------------------------------------
    def embed(self, path: Path, medium: str, purpose: str, dimension: int, seconds: int) -> list[SegmentVector]:
        """Every segment of the recording at ``path``, embedded by one asynchronous job."""
        fmt = media_format(path, medium)
        uri = self.upload(path, fmt)
        token = hashlib.sha256(f"{uri}|{purpose}|{dimension}|{seconds}|{time.time_ns()}".encode()).hexdigest()[:32]
        arn, output = self.start(segmented_input(medium, fmt, uri, purpose, dimension, seconds), token)
        return self.read(self.finish(arn, output))
