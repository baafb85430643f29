"""A local stand-in for an OpenAI-compatible ``/v1/embeddings`` server (127.0.0.1, a port of its own).

Its "model" is the hashing encoder, so vectors are deterministic and similar texts get similar vectors.
Behaviours a test can switch on: a required key, the first N requests failing with a status, vectors of
another length, a NaN in the vector of a given text. It stops with its context manager.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from xmodal.encoders import Content, HashingEncoder

from .fake_http import JSONHandler, serving


@dataclass
class Behaviour:
    dim: int = 48
    key: str | None = None
    fail_first: int = 0
    fail_status: int = 503
    wrong_length: int | None = None
    nan_for: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def fake_server(behaviour: Behaviour) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT/v1``)."""
    encoder = HashingEncoder(dim=behaviour.dim, native_dim=behaviour.dim)
    lock = threading.Lock()

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            body = self.read_json()
            with lock:
                behaviour.requests.append(body)
                behaviour.headers.append(dict(self.headers))
                failing = len(behaviour.requests) <= behaviour.fail_first
            if self.path != "/v1/embeddings":
                return self._send(404, {"error": "not found"})
            if behaviour.key is not None and self.headers.get("Authorization") != f"Bearer {behaviour.key}":
                return self._send(401, {"error": "bad key"})
            if failing:
                return self._send(behaviour.fail_status, {"error": "busy"})
            texts = body["input"]
            vectors = encoder.encode([Content(text=t) for t in texts]).tolist()
            if "dimensions" in body:
                vectors = [v[: body["dimensions"]] for v in vectors]
            if behaviour.wrong_length is not None:
                vectors = [(v * 8)[: behaviour.wrong_length] for v in vectors]
            for i, text in enumerate(texts):
                if behaviour.nan_for is not None and behaviour.nan_for in text:
                    vectors[i][0] = float("nan")
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in reversed(list(enumerate(vectors)))]
            self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            self.send_json(status, payload)

    with serving(Handler) as url:
        yield f"{url}/v1"
