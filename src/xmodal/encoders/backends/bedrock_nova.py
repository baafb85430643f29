"""``bedrock-nova``: Amazon Nova Multimodal Embeddings through ``boto3`` ``bedrock-runtime`` ``invoke_model``.

One synchronous request per text or image, in the documented shape::

    {"taskType": "SINGLE_EMBEDDING",
     "singleEmbeddingParams": {"embeddingPurpose": "GENERIC_INDEX", "embeddingDimension": 1024,
                               "text": {"truncationMode": "END", "value": "..."}}}
    image: {"format": "png", "detailLevel": "STANDARD_IMAGE", "source": {"bytes": "<base64>"}}
    response {"embeddings": [{"embeddingType": "TEXT", "embedding": [...]}]}

Purposes: items are embedded for ``GENERIC_INDEX``; queries for the ``*_RETRIEVAL`` purpose of what the
index holds (``TEXT_RETRIEVAL`` for an index of texts, ``IMAGE_RETRIEVAL`` of images,
``DOCUMENT_RETRIEVAL`` of pages, ``VIDEO_``/``AUDIO_RETRIEVAL``, else ``GENERIC_RETRIEVAL``; the engine
tells it through ``set_repository``), or the one fixed by ``query_purpose``; ``CLASSIFICATION`` and
``CLUSTERING`` for those tasks. ``dim`` is requested natively when it is 256, 384, 1024 or 3072 (default
1024); another value is requested at the next size and truncated and renormalised.

Options: ``dim``, ``model_id``, ``region`` (else the AWS chain's), ``truncation`` (``END``, ``START``,
``NONE``), ``detail_level`` (``STANDARD_IMAGE``, or ``DOCUMENT_IMAGE`` for pages), ``query_purpose``
(``auto``); not recorded: ``endpoint_url``, ``profile``, ``concurrency`` (4), ``retries`` (6 tries, with
exponential backoff and jitter on throttling, 5xx, timeouts and connection errors), ``backoff`` (0.5 s),
``timeout`` (60 s) and ``client`` (a boto3 client of your own, Python only). Credentials come from the
standard AWS chain (environment, profile, SSO, instance role) and are never recorded.

Audio and video (``audio``/``video`` vector kinds): a recording of at most 30 s goes inline to ``invoke_model``
(``{"audio": {"format": "wav", "source": {"bytes": …}}}``; a video adds ``"embeddingMode":
"AUDIO_VIDEO_COMBINED"``); a longer one goes through the asynchronous API (:mod:`.bedrock_nova_async`:
``start_async_invoke`` with ``SEGMENTED_EMBEDDING``, results in S3, polled), which needs ``s3_uri`` (an S3
staging location, ``s3://BUCKET/PREFIX``); the item's vector is then the renormalised mean of its segments',
and :meth:`BedrockNovaEncoder.segments` (or :func:`.bedrock_nova_segments.add_recording`) gives each segment
with its time range; :meth:`BedrockNovaEncoder.segmented` is the encoder hook through which
:meth:`xmodal.Engine.add` adds a long recording with one segment item per range
(:mod:`xmodal.ingest.recordings`). Options: ``s3_uri``, ``segment_seconds`` (10; 1 to 30), ``poll`` (5 s
between ``get_async_invoke`` calls), ``async_wait`` (3600 s) and ``s3_client`` (Python only).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigError, ValidationError
from .. import identity
from ..base import (
    BaseEncoder,
    Purpose,
    SegmentVector,
    Vectors,
    check_dim,
    native_request,
    repository_kind,
    truncate,
)
from ._common import Usage, checked_rows, positive, require
from .bedrock_nova_async import (
    SYNC_BYTES,
    SYNC_SECONDS,
    AsyncJobs,
    mean_vector,
    media_format,
    media_params,
    split_s3_uri,
)
from .bedrock_nova_media import recording_file

MODEL_ID = "amazon.nova-2-multimodal-embeddings-v1:0"
SIZES = (256, 384, 1024, 3072)
RETRIEVAL = {
    "text": "TEXT_RETRIEVAL",
    "image": "IMAGE_RETRIEVAL",
    "document": "DOCUMENT_RETRIEVAL",
    "video": "VIDEO_RETRIEVAL",
    "audio": "AUDIO_RETRIEVAL",
    "generic": "GENERIC_RETRIEVAL",
}
QUERY_PURPOSES = ("auto", *RETRIEVAL.values())
TRUNCATION = ("END", "START", "NONE")
DETAIL = ("STANDARD_IMAGE", "DOCUMENT_IMAGE")
FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp"}
#: Error codes worth another try: throttling and the service's own failures.
TRANSIENT = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelNotReadyException",
    "ModelTimeoutException",
}


class _Transient(Exception):
    """A failure worth retrying."""


class BedrockNovaEncoder(BaseEncoder):
    """Text and image vectors of Amazon Nova Multimodal Embeddings, with its purposes and dimensions."""

    name = "bedrock-nova"
    modalities = frozenset({"text", "image", "audio", "video"})
    vector_kinds = {
        "text": ("text",),
        "image": ("image",),
        "combined": ("text", "image"),
        "audio": ("audio",),
        "video": ("video",),
    }

    def __init__(
        self,
        dim: int | None = None,
        model_id: str = MODEL_ID,
        region: str | None = None,
        truncation: str = "END",
        detail_level: str = "STANDARD_IMAGE",
        query_purpose: str = "auto",
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        concurrency: int = 4,
        retries: int = 6,
        backoff: float = 0.5,
        timeout: float = 60.0,
        client: Any = None,
        s3_uri: str | None = None,
        segment_seconds: int = 10,
        poll: float = 5.0,
        async_wait: float = 3600.0,
        s3_client: Any = None,
    ) -> None:
        require("boto3", "boto3", "bedrock")
        require("tenacity", "tenacity", "bedrock")
        wanted = check_dim(1024 if dim is None else dim, max(SIZES), self.name)
        self.request_dim = native_request(wanted, SIZES)
        self.native_dim = self.request_dim
        super().__init__(wanted)
        self.model_id = str(model_id)
        self.truncation = _choice(truncation, TRUNCATION, "truncation")
        self.detail_level = _choice(detail_level, DETAIL, "detail_level")
        self.query_purpose = _choice(query_purpose, QUERY_PURPOSES, "query_purpose")
        self.repository = "generic"
        self.concurrency = positive(concurrency, "concurrency", self.name)
        self.retries = positive(retries, "retries", self.name)
        self.backoff = float(positive(backoff, "backoff", self.name, number=float))
        self.region = region
        self.client = client if client is not None else _client(region, endpoint_url, profile, float(timeout))
        self.s3_uri = None if s3_uri in (None, "") else str(s3_uri)
        if self.s3_uri is not None:
            split_s3_uri(self.s3_uri)
        self.segment_seconds = positive(segment_seconds, "segment_seconds", self.name)
        if self.segment_seconds > 30:
            raise ConfigError(
                f"encoder 'bedrock-nova': option segment_seconds={segment_seconds!r} is over 30; "
                "Nova segments audio and video into 1 to 30 seconds"
            )
        self.poll = float(positive(poll, "poll", self.name, number=float))
        self.async_wait = float(positive(async_wait, "async_wait", self.name, number=float))
        self._s3_client = s3_client
        self._s3_settings = (region, profile, float(timeout))
        self._usage = Usage(
            "requests", "texts", "images", "characters", "recordings", "async_jobs", "segments", "retries"
        )

    # -- purposes ------------------------------------------------------------------------------------
    def set_repository(self, modalities: Iterable[str]) -> None:
        """What the index holds (the engine tells it): queries get that kind's retrieval purpose."""
        self.repository = repository_kind(modalities)

    def purpose_name(self, purpose: Purpose) -> str:
        """The ``embeddingPurpose`` of a request made for ``purpose``."""
        purpose = Purpose.parse(purpose)
        if purpose == Purpose.DOCUMENT:
            return "GENERIC_INDEX"
        if purpose == Purpose.QUERY:
            return RETRIEVAL[self.repository] if self.query_purpose == "auto" else self.query_purpose
        return purpose.value.upper()  # CLASSIFICATION, CLUSTERING

    # -- requests ------------------------------------------------------------------------------------
    def body(self, purpose: Purpose, *, text: str | None = None, image: Image.Image | None = None) -> dict[str, Any]:
        """The request body of one text or one image."""
        params: dict[str, Any] = {
            "embeddingPurpose": self.purpose_name(purpose),
            "embeddingDimension": self.request_dim,
        }
        if text is not None:
            params["text"] = {"truncationMode": self.truncation, "value": text}
        if image is not None:
            fmt, data = _image_bytes(image)
            params["image"] = {
                "format": fmt,
                "detailLevel": self.detail_level,
                "source": {"bytes": base64.b64encode(data).decode("ascii")},
            }
        return {"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": params}

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        self._usage.add(texts=len(texts), characters=sum(map(len, texts)))
        return self._run([self.body(purpose, text=t) for t in texts])

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        self._usage.add(images=len(images))
        return self._run([self.body(purpose, image=im) for im in images])

    def _encode_media(self, name: str, contents: list[Any], purpose: Purpose) -> Vectors:
        if name not in ("audio", "video"):
            return super()._encode_media(name, contents, purpose)
        rows = [self._recording_vector(content, name, purpose) for content in contents]
        return np.stack(rows) if rows else np.zeros((0, self.request_dim), dtype=np.float32)

    def _recording_vector(self, content: Any, medium: str, purpose: Purpose) -> Vectors:
        """One recording's raw vector: inline through ``invoke_model`` when short, else the renormalised mean
        of its segments' from the asynchronous API."""
        self._usage.add(recordings=1)
        with recording_file(content, medium) as (path, seconds):
            if seconds > SYNC_SECONDS or path.stat().st_size > SYNC_BYTES:
                return mean_vector([s.vector for s in self._segments(path, medium, purpose)])
            fmt = media_format(path, medium)
            source = {"bytes": base64.b64encode(path.read_bytes()).decode("ascii")}
        params = {
            "embeddingPurpose": self.purpose_name(purpose),
            "embeddingDimension": self.request_dim,
            medium: media_params(medium, fmt, source),
        }
        row: Vectors = self._run([{"taskType": "SINGLE_EMBEDDING", "singleEmbeddingParams": params}])[0]
        return row

    def segmented(
        self, medium: str, content: Any, purpose: Purpose | str = Purpose.DOCUMENT
    ) -> list[SegmentVector] | None:
        """The segments of one recording (``content``, as the ``audio``/``video`` loader gives it) when Nova
        embeds it in segments: longer than 30 s (or too large to send inline), through one asynchronous job,
        each with its time range and a vector of ``dim`` components; None for a short one (one inline vector)
        or another medium. :meth:`xmodal.Engine.add` adds such a recording with one segment item per range."""
        if medium not in ("audio", "video"):
            return None
        with recording_file(content, medium) as (path, seconds):
            if seconds <= SYNC_SECONDS and path.stat().st_size <= SYNC_BYTES:
                return None
            self._usage.add(recordings=1)
            found = self._segments(path, medium, Purpose.parse(purpose))
        vectors = truncate(np.stack([s.vector for s in found]), self.dim)
        return [SegmentVector(s.index, s.start, s.end, v) for s, v in zip(found, vectors, strict=True)]

    def segments(self, path: str | Path, medium: str, purpose: Purpose | str = Purpose.DOCUMENT) -> list[SegmentVector]:
        """Every segment of the recording at ``path`` (``medium``: ``audio`` or ``video``) with its start and
        end seconds and its vector of ``dim`` components, embedded by one asynchronous job."""
        if medium not in ("audio", "video"):
            raise ConfigError(f"encoder 'bedrock-nova': medium {medium!r} is not audio or video")
        found = self._segments(Path(path), medium, Purpose.parse(purpose))
        vectors = truncate(np.stack([s.vector for s in found]), self.dim)
        return [SegmentVector(s.index, s.start, s.end, v) for s, v in zip(found, vectors, strict=True)]

    def _segments(self, path: Path, medium: str, purpose: Purpose) -> list[SegmentVector]:
        if self.s3_uri is None:
            raise ConfigError(
                f"encoder 'bedrock-nova': {path.name!r} is longer than {SYNC_SECONDS:g} s, which Nova embeds only "
                "through its asynchronous API, whose input and output live in S3; pass --encoder-option "
                "s3_uri=s3://BUCKET/PREFIX (a bucket in the model's region the credentials may write to)"
            )
        jobs = AsyncJobs(self.api, self._s3(), self.s3_uri, self.model_id, poll=self.poll, wait=self.async_wait)
        self._usage.add(async_jobs=1)
        found = jobs.embed(path, medium, self.purpose_name(purpose), self.request_dim, self.segment_seconds)
        bad = [s.index for s in found if s.vector.shape[0] != self.request_dim]
        if bad:
            raise ConfigError(
                f"Bedrock model {self.model_id} returned segments of another size than {self.request_dim}; "
                f"check --encoder-option model_id={self.model_id} and --dim"
            )
        self._usage.add(segments=len(found))
        return found

    def _s3(self) -> Any:
        if self._s3_client is None:
            import boto3
            from botocore.config import Config

            region, profile, timeout = self._s3_settings
            session = boto3.session.Session(profile_name=profile, region_name=region)
            self._s3_client = session.client(
                "s3", config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard"})
            )
        return self._s3_client

    def _run(self, bodies: list[dict[str, Any]]) -> Vectors:
        if len(bodies) <= 1 or self.concurrency == 1:
            rows = [self._invoke(b) for b in bodies]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(bodies)), thread_name_prefix="xmodal-nova") as pool:
                rows = list(pool.map(self._invoke, bodies))
        fix = f"check --encoder-option model_id={self.model_id} (a Nova Multimodal Embeddings model) and --dim"
        return checked_rows(rows, len(bodies), self.request_dim, f"Bedrock model {self.model_id}", fix)

    def _invoke(self, body: dict[str, Any]) -> list[float]:
        response = self.api(
            "invoke_model",
            modelId=self.model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        try:
            payload = json.loads(response["body"].read())
            vector = payload["embeddings"][0]["embedding"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValidationError(
                "response",
                f"Bedrock answered without embeddings[0].embedding ({self.model_id})",
                f"check --encoder-option model_id={self.model_id}",
            ) from None
        return [float(v) for v in vector]

    def api(self, operation: str, **kwargs: Any) -> Any:
        """One bedrock-runtime call (``invoke_model``, ``start_async_invoke``, ``get_async_invoke``), retried
        with exponential backoff and jitter on throttling and 5xx, its refusals turned into clear errors."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.backoff, max=30.0) + wait_random(0, self.backoff),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            before_sleep=lambda _state: self._count("retries"),
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._call(operation, kwargs)
        except _Transient as exc:
            raise ConfigError(
                f"encoder 'bedrock-nova': Bedrock kept failing after {self.retries} tries ({exc}); lower "
                "--encoder-option concurrency, raise --encoder-option retries, or ask AWS for a higher quota"
            ) from None
        return response

    def _call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            ReadTimeoutError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )

        self._count("requests")
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            raise self._client_error(exc) from None
        except NoCredentialsError:
            raise ConfigError(
                "encoder 'bedrock-nova': no AWS credentials found; set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY), run aws sso login, or use an instance role; they are never recorded"
            ) from None
        except (ReadTimeoutError, BotoConnectionError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None
        except BotoCoreError as exc:
            raise ConfigError(
                f"encoder 'bedrock-nova': {exc}; check --encoder-option region and endpoint_url"
            ) from None

    def _client_error(self, exc: Any) -> Exception:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in TRANSIENT or status == 429 or status >= 500:
            return _Transient(f"{code or status}: {message}")
        if code == "AccessDeniedException":
            return ConfigError(
                f"encoder 'bedrock-nova': access denied to {self.model_id} ({message}); grant the credentials "
                f"bedrock:InvokeModel (and bedrock:StartAsyncInvoke, bedrock:GetAsyncInvoke for long audio and video) "
                f"on it and enable access to Nova Multimodal Embeddings in this region "
                "(Bedrock console, Model access)"
            )
        if code in ("ExpiredTokenException", "UnrecognizedClientException", "InvalidSignatureException"):
            return ConfigError(
                f"encoder 'bedrock-nova': AWS refused the credentials ({code}: {message}); refresh them "
                "(aws sso login, a new session token, or another AWS_PROFILE)"
            )
        if code == "ResourceNotFoundException":
            return ConfigError(
                f"encoder 'bedrock-nova': no model {self.model_id!r} here ({message}); check --encoder-option model_id "
                "and --encoder-option region (Nova Multimodal Embeddings is offered in some regions only)"
            )
        return ValidationError(
            "content",
            f"Bedrock refused the request ({code}: {message})",
            "check the text's length and the image's format and size",
        )

    def _count(self, what: str) -> None:
        self._usage.add(**{what: 1})

    # -- what is recorded ------------------------------------------------------------------------------
    def usage(self) -> dict[str, int]:
        """Requests sent (retries included), texts, images and characters embedded, retries made."""
        return self._usage.snapshot()

    def config(self) -> dict[str, Any]:
        parameters = {
            "model_id": self.model_id,
            "truncation": self.truncation,
            "detail_level": self.detail_level,
            "query_purpose": self.query_purpose,
        }
        return {
            "name": self.name,
            "dim": self.dim,
            **parameters,
            "region": self.region,
            "s3_uri": self.s3_uri,
            "segment_seconds": self.segment_seconds,
            identity.IDENTITY: identity.of_parameters(
                f"{self.model_id} (Amazon Bedrock)", {**parameters, "embeddingDimension": self.request_dim}
            ),
        }


def _choice(value: object, allowed: tuple[str, ...], setting: str) -> str:
    text = str(value)
    if text not in allowed and text.upper() in allowed:
        text = text.upper()
    if text not in allowed:
        raise ConfigError(f"encoder 'bedrock-nova': option {setting}={value!r} is not one of {', '.join(allowed)}")
    return text


def _image_bytes(image: Image.Image) -> tuple[str, bytes]:
    """The image's format (one Nova takes) and bytes: as read when it came as PNG, JPEG, GIF or WebP, else PNG."""
    fmt = FORMATS.get(str(image.format or "").upper())
    buffer = io.BytesIO()
    if fmt is None:
        fmt = "png"
        image.convert("RGB" if image.mode not in ("RGB", "RGBA", "L") else image.mode).save(buffer, format="PNG")
    else:
        image.save(buffer, format=fmt.upper())
    return fmt, buffer.getvalue()


def _client(region: str | None, endpoint_url: str | None, profile: str | None, timeout: float) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile, region_name=region)
    if session.region_name is None:
        raise ConfigError(
            "encoder 'bedrock-nova': no AWS region; pass --encoder-option region=us-east-1 "
            "(or set AWS_REGION, or a profile's region)"
        )
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
    return session.client("bedrock-runtime", endpoint_url=endpoint_url, config=config)
