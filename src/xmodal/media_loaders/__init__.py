"""Media loaders: a registry that turns an item's media reference into content an encoder reads.

An item carries its media by name (``Item.media = {"image": "photos/cat.png"}``). Each name is a
media loader resolved through :data:`MEDIA` (built-ins, the ``xmodal.media`` entry point group, or a
dotted path ``"package.module:Loader"``, which is then the medium's name). A dotted path imports code, so
data (a catalog line, a request) cannot choose one: it resolves only once allowed by :func:`allow_media`,
which the engine calls with the index setting ``media`` (``Engine.open(media=[...])``, ``xmodal
--media-loader``); anything else is refused before any import. A loader checks a reference
(existence, size, format), decodes it into the content object its encoders read (an RGB image for
``image``), and says how the accepted bytes are kept in the index's content-addressed
:class:`~xmodal.media.MediaStore` (the file suffix), so an acknowledged item never points at a file the
user later moves. ``text`` is not a medium: it is the item's title and body.

This module imports nothing heavy; :mod:`.image` (Pillow) loads when the ``image`` loader is first used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, ValidationError, brief, check_length
from ..registry import Registry

MediaRef = str | bytes  # a path (absolute, or relative to the catalog file) or the raw bytes
TEXT = "text"  # the item's own text: a part of a modality, never a medium
MAX_PATH_LENGTH = 4_096  # a media path, in characters (Linux's PATH_MAX)
MAX_NAME_LENGTH = 256  # a medium's name (or a loader's dotted path)


@dataclass(frozen=True, slots=True)
class LoadedMedia:
    """A checked medium: the content an encoder reads, and the bytes to keep (``None``: keep the reference)."""

    content: Any
    data: bytes | None
    suffix: str = ".bin"


@runtime_checkable
class MediaLoader(Protocol):
    """Turns a reference into content. ``max_bytes`` bounds what it reads; ``load`` raises an
    :class:`~xmodal.errors.XmodalError` naming the item, the field and the fix for refused media."""

    name: str
    max_bytes: int

    def load(self, ref: MediaRef, base_dir: Path | None = None, *, item: str | None = None) -> LoadedMedia: ...


def _is_loader(obj: object) -> bool:
    return callable(getattr(obj, "load", None)) or isinstance(obj, type)


#: Media loaders by name: registered here, ``xmodal.media`` entry points, or ``"package.module:Loader"``.
MEDIA: Registry[Any] = Registry("media", "media loader", _is_loader)
MEDIA.register("image", "xmodal.media_loaders.image:ImageLoader")
MEDIA.register("audio", "xmodal.av.loaders:AudioLoader")  # a recording, kept as it was added (xmodal.av)
MEDIA.register("video", "xmodal.av.loaders:VideoLoader")

_instances: dict[str, MediaLoader] = {}

NOT_ALLOWED = "a dotted path the index settings do not name (a catalog or a request cannot choose code to import)"


def allow_media(names: Iterable[str]) -> None:
    """Allow the media loaders named by dotted path in ``names`` (an index's ``media`` setting) to resolve,
    in this process, from now on."""
    for name in names:
        if name not in MEDIA:
            MEDIA.register(name, name)  # a lazy reference: imported when first used


def media_loader(name: str) -> MediaLoader:
    """The loader of the medium ``name`` (a class is instantiated once), or a :class:`ConfigError` (a dotted
    path that :func:`allow_media` did not allow is refused before anything is imported)."""
    loader = _instances.get(name)
    if loader is None:
        if name == TEXT:
            raise ConfigError("'text' is the item's title and body, not a medium; use the title/text fields")
        if not _allowed(name):
            raise ConfigError(f"media loader {brief(name)}: {NOT_ALLOWED}")
        part = MEDIA.resolve(name)
        loader = part() if isinstance(part, type) else part
        if not isinstance(loader, MediaLoader):
            raise ConfigError(f"media loader {name!r} does not implement the media loader protocol (name, load)")
        _instances[name] = loader
    return loader


def _allowed(name: str) -> bool:
    """Whether resolving ``name`` imports nothing that data chose: a registered name or an entry point, or a
    name that is not a dotted path (the registry refuses it)."""
    return (":" not in name and "." not in name) or name in MEDIA


def available_media() -> list[str]:
    """Media names that resolve without a dotted path."""
    return MEDIA.names()


def check_medium(name: object, *, item: str | None = None, field: str = "media") -> str:
    """``name`` when it is a medium a loader exists for, else a :class:`ValidationError` naming the fix."""
    if not isinstance(name, str) or not name or name == TEXT or len(name) > MAX_NAME_LENGTH:
        raise ValidationError(
            field, f"{brief(name)} is not a medium name", f"use one of {', '.join(available_media())}", item=item
        )
    try:
        if not _allowed(name):
            raise ConfigError(NOT_ALLOWED)
        media_loader(name)
    except ConfigError as exc:
        raise ValidationError(
            field,
            f"no media loader {brief(name)} ({exc})",
            f"use one of {', '.join(available_media())}, or name the loader in the index setting 'media' "
            "(Engine.open(media=[...]), xmodal --media-loader PATH) or register it with the entry point group "
            f"{MEDIA.entry_point_group!r}",
            item=item,
        ) from exc
    return name


def check_media(media: Mapping[str, Any] | None, *, item: str | None = None) -> dict[str, MediaRef]:
    """A validated ``{medium: reference}`` mapping (a reference is a path string or bytes)."""
    if media is None:
        return {}
    if not isinstance(media, Mapping):
        raise ValidationError("media", "must be an object of medium → reference", 'e.g. {"image": "a.png"}', item=item)
    out: dict[str, MediaRef] = {}
    for name, ref in media.items():
        named = isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH
        check_medium(name, item=item, field=f"media.{name}" if named else "media")
        if isinstance(ref, bytearray):
            ref = bytes(ref)
        if not isinstance(ref, (str, bytes)) or not ref:
            raise ValidationError(
                f"media.{name}", "must be a non-empty path or bytes", "give a file path (or the bytes)", item=item
            )
        if isinstance(ref, str):
            check_length(f"media.{name}", ref, MAX_PATH_LENGTH, "give the file's path", item=item)
        out[name] = ref
    return out


__all__ = [
    "MEDIA",
    "TEXT",
    "LoadedMedia",
    "MediaLoader",
    "MediaRef",
    "allow_media",
    "available_media",
    "check_media",
    "check_medium",
    "media_loader",
]
