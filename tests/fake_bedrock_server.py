"""A local stand-in for the Bedrock runtime's ``InvokeModel`` endpoint (127.0.0.1, a port of its own).

It answers ``POST /model/{modelId}/invoke`` with a Nova Multimodal Embeddings response whose vector comes
from the hashing encoder (texts only), after throttling the first ``throttle_first`` requests. Point
boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` or the encoder's ``endpoint_url`` option.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from xmodal.encoders import Content, HashingEncoder


@dataclass
class Runtime:
    throttle_first: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def fake_bedrock(runtime: Runtime) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the endpoint URL."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
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
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if error is not None:
                self.send_header("x-amzn-ErrorType", error)
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
