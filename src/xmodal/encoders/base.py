"""The ``Encoder`` interface, the shared batching logic, and the encoder registry.

An encoder maps contents (text, an image, or both) into one L2-normalised vector space.
A content with both a text and an image is encoded as the renormalised mean of its two
vectors (the Nova crossmodal design). ``dim`` below the model's native size truncates the
vectors Matryoshka-style and renormalises them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..errors import ConfigError, ValidationError
from ..registry import Registry

Vectors = npt.NDArray[np.float32]


class Purpose(enum.StrEnum):
    """What a vector is for; asymmetric models embed queries and documents differently."""

    QUERY = "query"
    DOCUMENT = "document"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"


@dataclass(frozen=True, slots=True)
class Content:
    """One thing to encode: a text, a decoded RGB image, or both."""

    text: str | None = None
    image: Image.Image | None = None

    def __post_init__(self) -> None:
        if not self.text and self.image is None:
            raise ValidationError("content", "has neither text nor image", "give at least one")


@runtime_checkable
class Encoder(Protocol):
    """Maps contents to float32 [n, dim] L2-normalised vectors."""

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
    """Splits a mixed batch by modality, encodes each part, merges, truncates and renormalises.

    Subclasses implement ``_encode_texts`` and/or ``_encode_images`` returning raw vectors of
    ``native_dim`` components.
    """

    name = "base"
    native_dim = 0
    modalities: frozenset[str] = frozenset()

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and not 1 <= dim <= self.native_dim:
            raise ConfigError(f"dim must be between 1 and {self.native_dim} for encoder {self.name!r}, got {dim}")
        self.dim = dim or self.native_dim

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        raise ValidationError("content.text", f"encoder {self.name!r} does not encode text", "use a text encoder")

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        raise ValidationError("content.image", f"encoder {self.name!r} does not encode images", "use an image encoder")

    def encode(self, batch: Sequence[Content], purpose: Purpose = Purpose.DOCUMENT) -> Vectors:
        n = len(batch)
        out = np.zeros((n, self.native_dim), dtype=np.float32)
        text_rows = [i for i, c in enumerate(batch) if c.text]
        image_rows = [i for i, c in enumerate(batch) if c.image is not None]
        if text_rows:
            texts = [str(batch[i].text) for i in text_rows]
            out[text_rows] += normalize(self._encode_texts(texts, purpose))
        if image_rows:
            images = [batch[i].image for i in image_rows]
            out[image_rows] += normalize(self._encode_images([im for im in images if im is not None], purpose))
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
