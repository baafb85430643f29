"""``http-embeddings``: text vectors from an OpenAI-compatible ``POST /v1/embeddings`` server.

That API is served by vLLM, Hugging Face TEI, Ollama, LiteLLM and OpenAI itself::

    request  {"model": "...", "input": ["text", ...], "encoding_format": "float"[, "dimensions": n]}
    response {"data": [{"index": 0, "embedding": [...]}, ...], "usage": {...}}

Options (``--encoder-option k=v``): ``url`` (the base, e.g. ``http://127.0.0.1:8000/v1``, or the full
``…/embeddings``; else ``$XMODAL_EMBEDDINGS_URL``), ``model`` (else ``$XMODAL_EMBEDDINGS_MODEL``),
``dim`` (Matryoshka: up to the model's; sent as ``dimensions`` with ``send_dimensions=true``, else
truncated and renormalised here), ``query_prefix``/``document_prefix`` (the purposes of asymmetric models
such as E5: ``"query: "``, ``"passage: "``), and, not recorded in the index: ``api_key`` (else the variable
named by ``api_key_env``, default ``$XMODAL_EMBEDDINGS_API_KEY``, then ``$OPENAI_API_KEY``),
``batch_size`` (64), ``concurrency`` (4 requests at a time), ``timeout`` (30 s), ``retries`` (5 tries
with exponential backoff and jitter on timeouts, connection errors, 429 and 5xx) and ``backoff`` (0.5 s).
The model's dimension is learned from one probe request when an index is created.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ...errors import ConfigError, ValidationError
from .. import identity
from ..base import BaseEncoder, Purpose, Vectors, check_dim
from ._common import Usage, checked_rows, positive, require, secret

URL_ENV = "XMODAL_EMBEDDINGS_URL"
MODEL_ENV = "XMODAL_EMBEDDINGS_MODEL"
KEY_ENV = "XMODAL_EMBEDDINGS_API_KEY"


class _Transient(Exception):
    """A failure worth retrying (timeout, connection error, 429, 5xx)."""


class HttpEmbeddingsEncoder(BaseEncoder):
    """Text encoder over an OpenAI-compatible embeddings endpoint."""

    name = "http-embeddings"
    modalities = frozenset({"text"})
    vector_kinds = {"text": ("text",)}

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        dim: int | None = None,
        native_dim: int | None = None,
        send_dimensions: bool = False,
        query_prefix: str = "",
        document_prefix: str = "",
        api_key_env: str = KEY_ENV,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        concurrency: int = 4,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        httpx = require("httpx", "httpx", "http")
        require("tenacity", "tenacity", "http")
        self.url = _endpoint(url or secret(None, [URL_ENV]))
        self.model = str(model or secret(None, [MODEL_ENV]) or "")
        if not self.model:
            raise ConfigError(
                f"encoder {self.name!r}: no model; pass --encoder-option model=NAME (the server's model name) "
                f"or set {MODEL_ENV}"
            )
        self.send_dimensions = bool(send_dimensions)
        self.prefixes = {Purpose.QUERY: str(query_prefix), Purpose.DOCUMENT: str(document_prefix)}
        self.api_key_env = str(api_key_env)
        self._key = secret(api_key, [self.api_key_env, "OPENAI_API_KEY"])
        self.batch_size = positive(batch_size, "batch_size", self.name)
        self.concurrency = positive(concurrency, "concurrency", self.name)
        self.retries = positive(retries, "retries", self.name)
        self.backoff = float(positive(backoff, "backoff", self.name, number=float))
        self._client = httpx.Client(timeout=float(positive(timeout, "timeout", self.name, number=float)))
        self._usage = Usage("requests", "texts", "characters", "retries")
        self.native_dim = positive(native_dim, "native_dim", self.name) if native_dim is not None else self._probe_dim()
        super().__init__(check_dim(dim, self.native_dim, self.name))

    # -- encoding ------------------------------------------------------------------------------------
    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        prefix = self.prefixes.get(purpose, self.prefixes[Purpose.DOCUMENT])
        batches = [[prefix + t for t in texts[i : i + self.batch_size]] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1:
            parts = [self._embed(batches[0])]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(batches)), thread_name_prefix="xmodal-http") as pool:
                parts = list(pool.map(self._embed, batches))
        out = np.concatenate(parts) if parts else np.zeros((0, self.native_dim), np.float32)
        if self.send_dimensions and self.dim < self.native_dim:  # the server made dim components; pad to native
            out = np.pad(out, ((0, 0), (0, self.native_dim - self.dim)))
        return out

    def _embed(self, texts: list[str]) -> Vectors:
        width = self.dim if self.send_dimensions else self.native_dim
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.send_dimensions:
            body["dimensions"] = self.dim
        data = self._post(body)
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "embedding" in r for r in rows):
            raise ValidationError(
                "response", f"{self.url} answered without a 'data' list of embeddings", "check --encoder-option url"
            )
        rows = sorted(rows, key=lambda r: int(r.get("index", 0)))
        fix = (
            "point --encoder-option url/model at the model this index was built with "
            f"({self.model}, {width} dimensions), "
            "or build a new index in another folder"
        )
        try:
            vectors = [list(map(float, r["embedding"])) for r in rows]
        except (TypeError, ValueError):
            raise ValidationError(
                "response", f"{self.url} answered with embeddings that are not lists of numbers", fix
            ) from None
        if len({len(v) for v in vectors}) > 1:
            raise ConfigError(f"{self.url} returned vectors of different lengths for model {self.model!r}; {fix}")
        self._usage.add(texts=len(texts), characters=sum(map(len, texts)))
        return checked_rows(vectors, len(texts), width, f"{self.url} (model {self.model!r})", fix)

    def _post(self, body: dict[str, Any]) -> Any:
        import httpx
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.backoff, max=30.0) + wait_random(0, self.backoff),  # backoff + jitter
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            before_sleep=lambda _state: self._count("retries"),
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._count("requests")
                    try:
                        response = self._client.post(self.url, json=body, headers=headers)
                    except httpx.TransportError as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _Transient(f"HTTP {response.status_code}: {response.text[:200]}")
        except _Transient as exc:
            raise ConfigError(
                f"encoder {self.name!r}: {self.url} failed {self.retries} times ({exc}); check that the server runs "
                "and is not overloaded, or raise --encoder-option retries / timeout"
            ) from None
        return self._json(response)

    def _json(self, response: Any) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise ConfigError(
                f"encoder {self.name!r}: {self.url} refused the request (HTTP {status}): set the API key in "
                f"${self.api_key_env} (or pass --encoder-option api_key=… when opening the index; it is never recorded)"
            )
        if status == 404:
            raise ConfigError(
                f"encoder {self.name!r}: {self.url} has no embeddings endpoint (HTTP 404); check --encoder-option url "
                "(the server's base URL, e.g. http://host:8000/v1)"
            )
        if status >= 400:
            raise ValidationError(
                "text",
                f"{self.url} refused the request (HTTP {status}): {response.text[:300]}",
                f"check --encoder-option model={self.model} and the texts' length",
            )
        try:
            return response.json()
        except ValueError:
            raise ValidationError(
                "response", f"{self.url} answered with something that is not JSON", "check --encoder-option url"
            ) from None

    def _probe_dim(self) -> int:
        vectors = self._post({"model": self.model, "input": ["dimension probe"], "encoding_format": "float"})
        try:
            width = len(vectors["data"][0]["embedding"])
        except (KeyError, IndexError, TypeError):
            raise ConfigError(
                f"encoder {self.name!r}: {self.url} did not answer a probe with an embedding; "
                "check --encoder-option url and model"
            ) from None
        return int(width)

    def _count(self, what: str) -> None:
        self._usage.add(**{what: 1})

    # -- what is recorded ------------------------------------------------------------------------------
    def usage(self) -> dict[str, int]:
        """Requests sent (retries included), texts and characters embedded, retries made, since it was created."""
        return self._usage.snapshot()

    def config(self) -> dict[str, Any]:
        parameters = {
            "model": self.model,
            "native_dim": self.native_dim,
            "send_dimensions": self.send_dimensions,
            "query_prefix": self.prefixes[Purpose.QUERY],
            "document_prefix": self.prefixes[Purpose.DOCUMENT],
        }
        return {
            "name": self.name,
            "url": self.url,
            "dim": self.dim,
            **parameters,
            "api_key_env": self.api_key_env,
            identity.IDENTITY: identity.of_parameters(f"{self.model} (OpenAI-compatible embeddings)", parameters),
        }


def _endpoint(url: str | None) -> str:
    if not url:
        raise ConfigError(
            "encoder 'http-embeddings': no url; pass --encoder-option url=http://HOST:PORT/v1 (the server's base URL) "
            f"or set {URL_ENV}"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"encoder 'http-embeddings': option url={url!r} must start with http:// or https://")
    url = url.rstrip("/")
    return url if url.endswith("/embeddings") else url + "/embeddings"
