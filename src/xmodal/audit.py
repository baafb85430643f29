"""Who is acting: the name an admin action (a delete) is recorded under in the audit log.

The REST and MCP servers run a write for a keyed caller inside :func:`acting_as` (``api-key:NAME``), the
command line as ``cli:<user>``; a program that sets nothing is ``library:<user>``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ACTOR: ContextVar[str | None] = ContextVar("xmodal_actor", default=None)


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """Record the admin actions inside the block under ``actor`` (None: the default)."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def current_actor() -> str:
    """The actor set by :func:`acting_as`, else ``library:<user>``."""
    return _ACTOR.get() or f"library:{system_user()}"


def system_user() -> str:
    """The operating-system user running this process (``unknown`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
