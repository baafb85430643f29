"""Shortening client input that an error message echoes back (an id, a Host header, a mode name).

An answer that repeats a rejected 100 kB id whole costs bandwidth and floods logs; the first
:data:`ECHO_CHARS` characters are enough to recognise it. Plain Python, no server dependency, so
the MCP tools over stdio use it too.
"""

from __future__ import annotations

import re

ECHO_CHARS = 80  # characters of one echoed value kept
MESSAGE_CHARS = 1000  # characters of a whole error message kept (a backstop)
ELLIPSIS = "…"

# A Python repr of a string, as error messages quote input ('abc' or "it's"), longer than ECHO_CHARS. It opens
# after no letter or digit and closes before none: the text between two short quoted values ("'color' never
# holds ... at 'x'") is not one.
_LONG_QUOTED = re.compile(
    r"(?<!\w)(?:'(?:[^'\\\n]|\\.){%d,}'|\"(?:[^\"\\\n]|\\.){%d,}\")(?!\w)" % (ECHO_CHARS + 1, ECHO_CHARS + 1)  # noqa: UP031
)
# An unquoted run without spaces longer than ECHO_CHARS (a field path naming a client's key, a file path).
_LONG_WORD = re.compile(r"[^\s'\"]{%d,}" % (ECHO_CHARS + 1))  # noqa: UP031


def clip(value: str, limit: int = ECHO_CHARS) -> str:
    """``value`` cut to ``limit`` characters, with "…" when something was left out."""
    return value if len(value) <= limit else value[:limit] + ELLIPSIS


def clip_message(message: str) -> str:
    """An error message with every long quoted value (its quotes kept) and every long word cut to
    :data:`ECHO_CHARS` characters, and the whole cut to :data:`MESSAGE_CHARS`."""
    if len(message) > ECHO_CHARS:
        message = _LONG_QUOTED.sub(lambda m: m[0][0] + clip(m[0][1:-1]) + m[0][-1], message)
        message = _LONG_WORD.sub(lambda m: clip(m[0]), message)
    return clip(message, MESSAGE_CHARS)
