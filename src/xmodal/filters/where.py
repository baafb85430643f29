"""The command line's filters: ``--where FIELD=VALUE`` expressions, and ``--filter JSON`` objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import ValidationError
from .syntax import DEPTH_FIX

_WHERE_OPS: tuple[tuple[str, str | None], ...] = (
    (">=", "gte"),
    ("<=", "lte"),
    ("!=", "ne"),
    (">", "gt"),
    ("<", "lt"),
    ("=", None),
)


def parse_where(expressions: Sequence[str]) -> dict[str, Any]:
    """Parse CLI ``FIELD=VALUE`` / ``FIELD!=VALUE`` / ``FIELD>=N`` / ``FIELD<N`` expressions into a filter
    object. FIELD may be a dotted path (``meta.brand=acme``).

    Values are read as JSON when they parse (``5``, ``true``, ``null``), else as strings; ``a|b`` is any of
    them (``!=a|b``: none of them).
    """
    out: dict[str, Any] = {}
    for expr in expressions:
        name, op, raw = _split_where(expr)
        if op is None:
            out[name] = _cli_value(raw) if "|" not in raw else [_cli_value(v) for v in raw.split("|")]
            continue
        cond = out.setdefault(name, {})
        if not isinstance(cond, dict):
            raise ValidationError("--where", f"{name} has both a value and a condition", "use one of them")
        if op == "ne" and "|" in raw:
            cond["nin"] = [_cli_value(v) for v in raw.split("|")]
        else:
            cond[op] = _cli_value(raw)
    return out


def parse_filter_json(texts: Sequence[str]) -> dict[str, Any]:
    """``--filter`` objects (JSON, the full filter language), all of which must hold: one object, or
    ``{"and": [...]}`` of several."""
    objects = []
    for text in texts:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValidationError(
                "--filter", f"is not JSON ({exc})", """write e.g. --filter '{"tags": "red"}'"""
            ) from None
        except RecursionError:  # nested deeper than the parser follows (a filter allows far fewer levels)
            raise ValidationError("--filter", "nests more levels than the parser can follow", DEPTH_FIX) from None
        if not isinstance(value, dict):
            raise ValidationError("--filter", "is not a JSON object", """write e.g. --filter '{"tags": "red"}'""")
        if value:
            objects.append(value)
    return objects[0] if len(objects) == 1 else ({"and": objects} if objects else {})


def _split_where(expr: str) -> tuple[str, str | None, str]:
    """Split at the first operator: ``price<=20`` → (price, lte, 20); ``color=red`` → (color, None, red)."""
    positions = [(expr.find(tok), -len(tok), tok, op) for tok, op in _WHERE_OPS if expr.find(tok) > 0]
    if not positions:
        raise ValidationError("--where", f"{expr!r} is not FIELD=VALUE", "write e.g. --where color=red or price<20")
    at, _, token, op = min(positions)
    return expr[:at].strip(), op, expr[at + len(token) :]


def _cli_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
