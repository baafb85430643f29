"""The ``Encoder`` interface, the shared batching logic, and the encoder registry.

An encoder maps contents (a text and/or media by name: an image, or any medium a loader of
:mod:`xmodal.media_loaders` decodes) into one L2-normalised vector space. A content with several
parts is encoded as the renormalised mean of their vectors (the Nova crossmodal design). ``dim``
below the model's native size truncates the vectors Matryoshka-style and renormalises them.

An encoder declares the vector kinds it makes for an item from which of its parts
(``vector_kinds``, see :func:`kinds_of`): the bundled ones make ``text`` from the text, ``image``
from the image and ``combined`` from both. Kinds are plain strings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..errors import ConfigError, ValidationError
from ..media_loaders import TEXT
from ..registry import Registry

Vectors = npt.NDArray[np.float32]


class Purpose(enum.StrEnum):
    """What a vector is for; asymmetric models embed queries and documents differently."""

    QUERY = "query"
    DOCUMENT = "document"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"


@dataclass(frozen=True, slots=True, init=False)
class Content:
    """One thing to encode: a text and/or loaded media by name (``image``: a decoded RGB image)."""

    text: str | None
    media: Mapping[str, Any]

    def __init__(
        self, text: str | None = None, image: Image.Image | None = None, *, media: Mapping[str, Any] | None = None
    ) -> None:
        parts = {k: v for k, v in (media or {}).items() if v is not None}
        if image is not None:
            parts["image"] = image
        if not text and not parts:
            raise ValidationError("content", "has neither text nor media", "give at least one")
        object.__setattr__(self, "text", text or None)
        object.__setattr__(self, "media", parts)

    @property
    def image(self) -> Image.Image | None:
        image: Image.Image | None = self.media.get("image")
        return image

    def parts(self) -> dict[str, Any]:
        """Every part by name: ``text`` (when set) and each medium."""
        return {**({TEXT: self.text} if self.text else {}), **self.media}


#: A declaration of vector kinds: kind → the parts (``text`` and media names) it is made from.
KindSpec = Mapping[str, tuple[str, ...]]


def default_kinds(modalities: frozenset[str] | set[str]) -> dict[str, tuple[str, ...]]:
    """The kinds an encoder of ``modalities`` makes when it declares none: one per part, and ``combined``
    (the renormalised mean) from text and image."""
    kinds: dict[str, tuple[str, ...]] = {m: (m,) for m in sorted(modalities, key=lambda m: (m != TEXT, m))}
    if TEXT in modalities and "image" in modalities:
        kinds["combined"] = (TEXT, "image")
    return kinds


def kinds_of(encoder: object) -> dict[str, tuple[str, ...]]:
    """The vector kinds an encoder declares (``vector_kinds``), or :func:`default_kinds` of its modalities."""
    declared = getattr(encoder, "vector_kinds", None)
    if declared is None:
        return default_kinds(frozenset(getattr(encoder, "modalities", ())))
    if not isinstance(declared, Mapping) or not declared:
        raise ConfigError(f"encoder {getattr(encoder, 'name', encoder)!r}: vector_kinds must map kind → parts")
    out: dict[str, tuple[str, ...]] = {}
    for kind, parts in declared.items():
        if not isinstance(kind, str) or not kind or isinstance(parts, str) or not parts:
            raise ConfigError(f"encoder vector kind {kind!r}: give a name and a tuple of parts, e.g. ('text',)")
        out[str(kind)] = tuple(str(p) for p in parts)
    return out


@runtime_checkable
class Encoder(Protocol):
    """Maps contents to float32 [n, dim] L2-normalised vectors. It may declare ``vector_kinds`` (kind →
    the parts it is made from, see :func:`kinds_of`); without, the kinds follow ``modalities``."""

    name: str
    dim: int
    modalities: frozenset[str]

    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors: ...

    def encode_queries(self, batch: Sequence[Content]) -> Vectors: ...

    def encode_documents(self, batch: Sequence[Content]) -> Vectors: ...

    def config(self) -> dict[str, Any]: ...


def normalize(vectors: npt.ArrayLike) -> Vectors:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    out: Vectors = np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)
    return out


def truncate(vectors: Vectors, dim: int) -> Vectors:
    """Matryoshka truncation: keep the first ``dim`` components and renormalise."""
    if dim > vectors.shape[-1]:
        raise ConfigError(f"dim {dim} is larger than the model's {vectors.shape[-1]}")
    return normalize(vectors[..., :dim])


class BaseEncoder:
    """Splits a mixed batch by part (text, each medium), encodes each, merges, truncates and renormalises.

    Subclasses implement ``_encode_texts`` and/or ``_encode_images`` returning raw vectors of
    ``native_dim`` components, or, for any medium, :meth:`_encode_media`. ``vector_kinds`` declares
    the kinds made from which parts (default: :func:`default_kinds` of ``modalities``).
    """

    name = "base"
    native_dim = 0
    modalities: frozenset[str] = frozenset()
    vector_kinds: KindSpec | None = None

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and not 1 <= dim <= self.native_dim:
            raise ConfigError(f"dim must be between 1 and {self.native_dim} for encoder {self.name!r}, got {dim}")
        self.dim = dim or self.native_dim

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        raise ValidationError("content.text", f"encoder {self.name!r} does not encode text", "use a text encoder")

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        raise ValidationError("content.image", f"encoder {self.name!r} does not encode images", "use an image encoder")

    def _encode_media(self, name: str, contents: list[Any], purpose: Purpose) -> Vectors:
        """Raw vectors of one part over a batch: ``text`` and ``image`` go to ``_encode_texts`` and
        ``_encode_images``; override it to encode another medium (its loader's content objects)."""
        if name == TEXT:
            return self._encode_texts([str(c) for c in contents], purpose)
        if name == "image":
            return self._encode_images(contents, purpose)
        raise ValidationError(
            f"content.{name}", f"encoder {self.name!r} does not encode {name}", "use an encoder of that medium"
        )

    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors:
        n = len(batch)
        out = np.zeros((n, self.native_dim), dtype=np.float32)
        rows: dict[str, list[int]] = {}
        for i, content in enumerate(batch):
            for name in content.parts():
                rows.setdefault(name, []).append(i)
        for name in sorted(rows, key=lambda m: (m != TEXT, m != "image", m)):  # text, image, then the others
            parts = [batch[i].parts()[name] for i in rows[name]]
            out[rows[name]] += normalize(self._encode_media(name, parts, purpose))
        return truncate(out, self.dim)

    def encode_queries(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.QUERY)

    def encode_documents(self, batch: Sequence[Content]) -> Vectors:
        return self.encode(batch, Purpose.DOCUMENT)

    def config(self) -> dict[str, Any]:
        """What must match for stored vectors to be comparable with new ones."""
        return {"name": self.name, "dim": self.dim}


EncoderFactory = Callable[..., Encoder]
#: Encoders by name: registered here, ``xmodal.encoders`` entry points, or ``"package.module:Factory"``.
ENCODERS: Registry[EncoderFactory] = Registry("encoders", "encoder", callable)


def register_encoder(name: str, factory: EncoderFactory | str) -> None:
    """Make an encoder available by name to ``create_encoder`` and the engine configuration."""
    ENCODERS.register(name, factory)


def available_encoders() -> list[str]:
    return ENCODERS.names()


def create_encoder(name: str, **options: Any) -> Encoder:
    """Build an encoder by name (or dotted path), e.g. ``create_encoder("offline", dim=256)``.

    The options may be a saved :meth:`Encoder.config` less its name: its ``identity`` (see
    :mod:`.identity`) is not an option and is dropped here; compare it with ``identity.check``.
    """
    options.pop("identity", None)
    return ENCODERS.resolve(name)(**options)
