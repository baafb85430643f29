"""Query context for the bandit: a small dict that is logged, and the feature vector built from it.

The dict is what goes into the impression log, so a policy can be re-trained or evaluated
off-policy from the logs alone; :func:`context_vector` turns it into the bandit's features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..records import Query
from .text import tokens

CONTEXT_FEATURES = (
    "bias",
    "length",
    "single_word",
    "digits",
    "quotes",
    "image",
    "slots",
    "slot_share",
    "memory_hits",
    "repeated",
    "unanswered",
    "known_terms",
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "user_searches",
    "user_rate",
)


def query_context(
    query: Query,
    *,
    slots: Mapping[str, Any],
    slot_words: int,
    memory_hits: int,
    known_terms: float,
    history: tuple[int, float] = (0, 0.0),
    answer_rate: float = 0.0,
    now: float | None = None,
    user: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The loggable context of one query."""
    text = query.text or ""
    words = tokens(text)
    moment = time.gmtime(time.time() if now is None else now)
    return {
        "length": len(words),
        "digits": any(c.isdigit() for c in text),
        "quotes": '"' in text or "'" in text,
        "image": query.image is not None,
        "slots": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in slots.items()},
        "slot_words": slot_words,
        "memory_hits": memory_hits,
        "searches": history[0],
        "actions": round(history[1], 4),
        "answer_rate": round(answer_rate, 4),
        "known_terms": round(known_terms, 4),
        "hour": moment.tm_hour,
        "weekday": moment.tm_wday,
        "user": dict(user) if user else None,
    }


ANSWERED_RATE = 0.25


def unanswered(ctx: Mapping[str, Any]) -> bool:
    """A query searched before whose searches end in a positive action less than ``ANSWERED_RATE`` of the
    time (a stray click does not make a failing query answered)."""
    searches, actions = int(ctx.get("searches", 0)), float(ctx.get("actions", 0.0))
    return searches > 0 and actions < ANSWERED_RATE * searches


def context_vector(ctx: Mapping[str, Any]) -> np.ndarray:
    """Features (see :data:`CONTEXT_FEATURES`) of a logged context; bounded to about [-1, 1]."""
    n = max(int(ctx.get("length", 0)), 1)
    hour = 2 * math.pi * float(ctx.get("hour", 0)) / 24
    day = 2 * math.pi * float(ctx.get("weekday", 0)) / 7
    user = ctx.get("user") or {}
    searches = int(ctx.get("searches", 0))
    return np.array(
        [
            1.0,
            min(n, 10) / 10,
            float(n == 1),
            float(bool(ctx.get("digits"))),
            float(bool(ctx.get("quotes"))),
            float(bool(ctx.get("image"))),
            min(len(ctx.get("slots") or {}), 3) / 3,
            min(int(ctx.get("slot_words", 0)) / n, 1.0),
            math.log1p(int(ctx.get("memory_hits", 0))) / math.log1p(100),
            math.log1p(searches) / math.log1p(1000),
            float(unanswered(ctx)),
            float(ctx.get("known_terms", 0.0)),
            0.5 * math.sin(hour),
            0.5 * math.cos(hour),
            0.5 * math.sin(day),
            0.5 * math.cos(day),
            math.log1p(float(user.get("searches", 0.0))) / 10,
            min(float(user.get("rate", 0.0)), 1.0),
        ],
        dtype=np.float64,
    )
