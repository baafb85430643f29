"""A local stand-in for the Bedrock runtime's ``InvokeModel`` endpoint (127.0.0.1, a port of its own).

It answers ``POST /model/{modelId}/invoke`` with a Nova Multimodal Embeddings response whose vector comes
from the hashing encoder (texts only), after throttling the first ``throttle_first`` requests. Point
boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` or the encoder's ``endpoint_url`` option.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from xmodal.encoders import Content, HashingEncoder

from .fake_http import JSONHandler, serving


@dataclass
class Runtime:
    throttle_first: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def fake_bedrock(runtime: Runtime) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the endpoint URL."""
    lock = threading.Lock()

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            with lock:
                runtime.bodies.append(body)
                runtime.paths.append(unquote(self.path))
                throttled = len(runtime.bodies) <= runtime.throttle_first
            if throttled:
                return self._send(429, {"message": "Too many requests"}, "ThrottlingException")
            params = body["singleEmbeddingParams"]
            size = params["embeddingDimension"]
            vector = HashingEncoder(dim=size, native_dim=size).encode([Content(text=params["text"]["value"])])[0]
            self._send(200, {"embeddings": [{"embeddingType": "TEXT", "embedding": vector.tolist()}]})

        def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
            self.send_json(status, payload, {"x-amzn-ErrorType": error} if error is not None else None)

    with serving(Handler) as url:
        yield url
