"""Search modes by name: ``dense`` (the engine's own vector search) and those the extensions provide.

Listing needs no index and loads no model: each extension class names its modes with one line each
(``Extension.MODES``). Which modes an open index can run is :meth:`xmodal.Engine.modes`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ValidationError
from .extension import DEFAULT_EXTENSIONS, EXTENSIONS, extension_class

DENSE_DESCRIPTION = "vector search alone (cosine top-k over the target vectors)"


def describe_modes(extensions: Sequence[str] | None = None) -> dict[str, str]:
    """Every mode with a one-line description: dense, then the modes of ``extensions`` (default: the
    built-in ones and every installed extension)."""
    names = list(extensions) if extensions is not None else sorted(set(DEFAULT_EXTENSIONS) | set(EXTENSIONS.names()))
    out = {"dense": DENSE_DESCRIPTION}
    for name in names:
        out.update(extension_class(name).MODES)
    return out


def available_modes(extensions: Sequence[str] | None = None) -> list[str]:
    return list(describe_modes(extensions))


def check_mode(name: str, extensions: Sequence[str] | None = None) -> str:
    """``name`` when it is a known mode; a :class:`ValidationError` naming the known ones otherwise."""
    known = available_modes(extensions)
    if name not in known:
        raise ValidationError("mode", f"unknown search mode {name!r}", f"use one of {', '.join(known)}")
    return name
