"""The xmodal error hierarchy.

Every error a user can cause is a :class:`XmodalError`. Input errors name the
offending field and say how to fix it, so a message can be shown as it is.

    XmodalError
    ├── ValidationError      bad input (a field of an item, query or request)
    │   └── ImageError       an image that is missing, corrupt, too large or not allowed
    ├── NotFoundError        an id that is not in the index
    ├── ConfigError          an engine or index configuration that cannot work
    ├── MissingDependency    an optional extra is not installed (also an ImportError)
    ├── StorageError         the store or an index file is unreadable or of another version
    │   └── DiskFull         a write found no space left on the index folder's disk
    └── RemoteError          a REST call (xmodal.Client) refused by the server for a reason of its own
        ├── AccessDenied     no API key, an unknown one, or one without the scope (401, 403)
        └── ConnectionFailed no answer from the server (not running, wrong URL, timed out)

Over REST, :class:`xmodal.Client` raises the class the engine raised on the server (a
:class:`ValidationError` with its field and fix, a :class:`NotFoundError`...); a
:class:`RemoteError` is for what only a remote call can meet.

Two helpers build input errors: :func:`brief` (a user's value, shortened, for a message) and
:func:`check_length` (a string over a size limit, refused with its length and the limit).
"""

from __future__ import annotations

import re
import reprlib


class XmodalError(Exception):
    """Base class of every error raised on purpose by xmodal."""

    #: The id of the REST request that answered with this error (raised by :class:`xmodal.Client`), to quote
    #: in a report; None for an error raised in this process.
    request_id: str | None = None


class ValidationError(XmodalError, ValueError):
    """Bad input: ``field`` names what is wrong and ``fix`` says what to do about it."""

    def __init__(self, field: str, problem: str, fix: str = "", *, item: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        self.item = item
        where = f"item {item!r}: " if item is not None else ""
        hint = f" ({fix})" if fix else ""
        super().__init__(f"{where}{field}: {problem}{hint}")


class ImageError(ValidationError):
    """An image that cannot be used: missing, corrupt, truncated, too large or of a refused format."""


class GuardBlocked(ValidationError):
    """A query the guards refused under the caller's policy; ``category`` names why (``injection``...).
    Raise it with :meth:`of`; the constructor is :class:`ValidationError`'s (a client rebuilds it from a body)."""

    def __init__(self, field: str, problem: str, fix: str = "", *, item: str | None = None) -> None:
        super().__init__(field, problem, fix, item=item)
        found = re.search(r"category '([a-z_]+)'", problem)
        self.category = found.group(1) if found else ""

    @classmethod
    def of(cls, category: str, reason: str, *, field: str = "query") -> GuardBlocked:
        return cls(
            field,
            f"blocked by the guards (category '{category}': {reason})",
            "rephrase the query; a deployment can set this category to 'flag' or 'allow' in its guards policy",
        )


class NotFoundError(XmodalError, KeyError):
    """An id that the index does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "not found"


class ConfigError(XmodalError):
    """A configuration that cannot work (unknown backend, dimension mismatch, ...)."""


class StorageError(XmodalError):
    """The store or a derived index file is unreadable, corrupt or of another format version."""


class DiskFull(StorageError):
    """A write found no space left on the disk of ``folder``: nothing of it was kept (the message says to free
    space there and retry); reads keep working."""

    def __init__(self, folder: str, message: str) -> None:
        super().__init__(message)
        self.folder = folder


class MissingDependency(XmodalError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'xmodal[{extra}]'")
        self.name = package  # ImportError's field: code that re-raises from ``exc.name`` keeps naming it
        self.package = package
        self.extra = extra


class RemoteError(XmodalError):
    """A REST call the server refused for a reason of its own (a rate limit, a full write queue, an internal
    error) or that got no answer. ``status`` is the HTTP status (0: no answer), ``fix`` what to do,
    ``request_id`` the id to quote in a report, ``retry_after`` the seconds the server asked to wait."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        fix: str = "",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{message} ({fix})" if fix else message)
        self.message = message
        self.status = status
        self.fix = fix
        self.request_id = request_id
        self.retry_after = retry_after


class AccessDenied(RemoteError, PermissionError):
    """401 or 403: the call needs an API key, the key is unknown, or it lacks the scope the call needs."""


class ConnectionFailed(RemoteError, ConnectionError):
    """No answer from the server at ``url``: it is not running there, the address is wrong, or it did not
    answer within the timeout (then a write may or may not have been applied)."""

    def __init__(self, url: str, message: str, fix: str) -> None:
        super().__init__(message, fix=fix)
        self.url = url


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel = 3
_BRIEF.maxstring = 80
_BRIEF.maxother = 80


def brief(value: object) -> str:
    """A short ``repr`` of a user's value for an error message: long strings and containers are cut and
    nesting stops three levels down, so neither a huge nor a deeply nested value can blow up a message
    (or the stack)."""
    return _BRIEF.repr(value)


def check_length(field: str, value: str, limit: int, fix: str, *, item: str | None = None) -> None:
    """Refuse a string longer than ``limit`` characters with a :class:`ValidationError` giving its length."""
    if len(value) > limit:
        raise ValidationError(
            field, f"is {len(value):,} characters, longer than the limit of {limit:,}", fix, item=item
        )
