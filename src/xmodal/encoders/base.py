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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..errors import ConfigError, ValidationError
from ..media_loaders import TEXT
from ..registry import Registry
from ..vectormath import normalize as normalize  # the encoders' own name for it (re-exported)

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SegmentVector:
    """One time segment of a recording an encoder embedded in segments: its index, start and end seconds, and
    its vector (of the encoder's ``dim`` where :meth:`segmented <Encoder>` returns it)."""

    index: int
    start: float
    end: float
    vector: Vectors


class Purpose(enum.StrEnum):
    """What a vector is for; asymmetric models embed queries and documents differently."""

    QUERY = "query"
    DOCUMENT = "document"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"

    @classmethod
    def parse(cls, value: object, setting: str = "purpose") -> Purpose:
        """The purpose named ``value``; a :class:`ConfigError` naming ``setting`` and the valid names otherwise."""
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ConfigError(f"{setting}: unknown purpose {value!r}; use one of {names}") from None


#: What an index holds, as the retrieval purposes of asymmetric models name it (Nova's ``*_RETRIEVAL``).
REPOSITORY_KINDS = ("text", "image", "document", "video", "audio", "generic")
_MEDIUM_REPOSITORY = {"video": "video", "audio": "audio", "page": "document", "pdf": "document", "document": "document"}


def repository_kind(modalities: Iterable[str]) -> str:
    """The kind of repository an index holding items of ``modalities`` is: ``text``, ``image``, ``document``
    (pages), ``video`` or ``audio`` when every item is of that kind, else ``generic`` (a mix, products of
    image and text, or an empty index)."""
    kinds = {_kind_of(m) for m in modalities}
    return kinds.pop() if len(kinds) == 1 else "generic"


def _kind_of(modality: str) -> str:
    parts = set(str(modality).split("+"))
    for medium, kind in _MEDIUM_REPOSITORY.items():
        if medium in parts:
            return kind
    return parts.pop() if len(parts) == 1 and parts <= {"text", "image"} else "generic"


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
    the parts it is made from, see :func:`kinds_of`); without, the kinds follow ``modalities``.

    Optional hooks the engine calls when an encoder has them: ``set_repository(modalities)`` (the
    modalities of the items the index holds, at open and after each add: an asymmetric model picks the
    retrieval purpose of queries from :func:`repository_kind` of them), ``usage()`` (counters shown by
    ``info``), ``prefetch()`` (load the model in the background) and ``segmented(medium, content)``: the
    :class:`SegmentVector` list of one recording the model embeds in time segments (a long one, for Nova), or
    None when it makes one vector of it; :meth:`xmodal.Engine.add` then adds the recording with one segment
    item per time range (:mod:`xmodal.ingest.recordings`)."""

    name: str
    dim: int
    modalities: frozenset[str]

    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors: ...

    def encode_queries(self, batch: Sequence[Content]) -> Vectors: ...

    def encode_documents(self, batch: Sequence[Content]) -> Vectors: ...

    def config(self) -> dict[str, Any]: ...


def truncate(vectors: Vectors, dim: int) -> Vectors:
    """Matryoshka truncation: keep the first ``dim`` components and renormalise."""
    if dim > vectors.shape[-1]:
        raise ConfigError(
            f"the encoder setting dim ({dim}) is larger than the model's {vectors.shape[-1]} dimensions; "
            f"use --dim {vectors.shape[-1]} or less (or a model with more dimensions)"
        )
    return normalize(vectors[..., :dim])


def check_dim(dim: object, native: int, encoder: str) -> int:
    """``dim`` checked against the model's ``native`` size (None: the native one): an int from 1 to ``native``,
    or a :class:`ConfigError` naming the setting and the fix."""
    if dim is None:
        return native
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= native:
        raise ConfigError(
            f"encoder {encoder!r}: dim must be an integer from 1 to {native} (the model's dimensions), got {dim!r}; "
            f"pass --dim {native} or less, or choose a model with more dimensions"
        )
    return dim


def native_request(dim: int, sizes: Sequence[int]) -> int:
    """The smallest size a model makes natively (``sizes``, e.g. Nova's 256/384/1024/3072) holding ``dim``
    components: requested as is, then truncated to ``dim`` and renormalised when it is larger."""
    fitting = [s for s in sorted(sizes) if s >= dim]
    if not fitting:
        raise ConfigError(
            f"dim {dim} is more than the model makes (at most {max(sizes)}); use --dim {max(sizes)} or less"
        )
    return fitting[0]


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
            raise ConfigError(
                f"dim must be between 1 and {self.native_dim} for encoder {self.name!r}, got {dim}; "
                f"pass --dim {self.native_dim} or less"
            )
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
        purpose = Purpose.parse(purpose)
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
