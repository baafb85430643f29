"""Structured JSON logs, one line per record, carrying the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

logger = logging.getLogger("xmodal.serve")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """Send xmodal.serve logs as JSON lines to stderr (idempotent)."""
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def new_request_id(given: str | None) -> str:
    """The client's ``X-Request-ID`` when it is short and safe, else a fresh one."""
    return given if given and _SAFE_ID.match(given) else uuid.uuid4().hex[:16]


def log_request(method: str, route: str, status: int, seconds: float, caller: str) -> None:
    logger.info(
        "request",
        extra={
            "fields": {
                "method": method,
                "route": route,
                "status": status,
                "ms": round(seconds * 1000, 3),
                "caller": caller,
                "at": round(time.time(), 3),
            }
        },
    )
