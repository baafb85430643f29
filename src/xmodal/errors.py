"""The xmodal error hierarchy.

Every error a user can cause is a :class:`XmodalError`. Input errors name the
offending field and say how to fix it, so a message can be shown as it is.

    XmodalError
    ├── ValidationError      bad input (a field of an item, query or request)
    │   └── ImageError       an image that is missing, corrupt, too large or not allowed
    ├── NotFoundError        an id that is not in the index
    ├── ConfigError          an engine or index configuration that cannot work
    ├── MissingDependency    an optional extra is not installed (also an ImportError)
    └── StorageError         the store or an index file is unreadable or of another version
        └── DiskFull         a write found no space left on the index folder's disk

Two helpers build input errors: :func:`brief` (a user's value, shortened, for a message) and
:func:`check_length` (a string over a size limit, refused with its length and the limit).
"""

from __future__ import annotations

import reprlib


class XmodalError(Exception):
    """Base class of every error raised on purpose by xmodal."""


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
