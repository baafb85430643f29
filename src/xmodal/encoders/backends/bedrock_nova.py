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
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from ...errors import ConfigError, ValidationError
from .. import identity
from ..base import BaseEncoder, Purpose, Vectors, check_dim, native_request, repository_kind
from ._common import Usage, checked_rows, positive, require

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
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

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
        self._usage = Usage("requests", "texts", "images", "characters", "retries")

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

    def _run(self, bodies: list[dict[str, Any]]) -> Vectors:
        if len(bodies) <= 1 or self.concurrency == 1:
            rows = [self._invoke(b) for b in bodies]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(bodies)), thread_name_prefix="xmodal-nova") as pool:
                rows = list(pool.map(self._invoke, bodies))
        fix = f"check --encoder-option model_id={self.model_id} (a Nova Multimodal Embeddings model) and --dim"
        return checked_rows(rows, len(bodies), self.request_dim, f"Bedrock model {self.model_id}", fix)

    def _invoke(self, body: dict[str, Any]) -> list[float]:
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
                    response = self._call(body)
        except _Transient as exc:
            raise ConfigError(
                f"encoder 'bedrock-nova': Bedrock kept failing after {self.retries} tries ({exc}); lower "
                "--encoder-option concurrency, raise --encoder-option retries, or ask AWS for a higher quota"
            ) from None
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

    def _call(self, body: dict[str, Any]) -> Any:
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
            return self.client.invoke_model(
                modelId=self.model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
            )
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
                f"bedrock:InvokeModel on it and enable access to Nova Multimodal Embeddings in this region "
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
