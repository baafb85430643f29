"""Immutable records that flow between the stages: :class:`Item`, :class:`Query`, :class:`Hits`."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ValidationError

AttributeValue = str | int | float | bool
ImageSource = str | bytes

MAX_ID_LENGTH = 512
MAX_K = 10_000


class Modality(enum.StrEnum):
    """What an item is made of."""

    TEXT = "text"
    IMAGE = "image"
    IMAGE_TEXT = "image+text"  # a product: an image and its text

    @classmethod
    def parse(cls, value: str | Modality, *, item: str | None = None) -> Modality:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ValidationError(
                "modality", f"unknown modality {value!r}", f"use one of {allowed}", item=item
            ) from None


class VectorKind(enum.StrEnum):
    """Which vector of an item (Nova design: text, image, and their renormalised mean)."""

    TEXT = "text"
    IMAGE = "image"
    COMBINED = "combined"


#: The order in which an item's vector stands for the whole item (similar items, semantic IDs): the
#: combined vector of a product, else its only vector.
PRIMARY_ORDER: tuple[VectorKind, ...] = (VectorKind.COMBINED, VectorKind.TEXT, VectorKind.IMAGE)


def primary_vector(vectors: Mapping[VectorKind, np.ndarray]) -> np.ndarray | None:
    """The vector that stands for an item (:data:`PRIMARY_ORDER`), or None when it has none."""
    for kind in PRIMARY_ORDER:
        if kind in vectors:
            return vectors[kind]
    return None


class Target(enum.StrEnum):
    """Which vectors a query is compared with; ``any`` keeps the best score per item."""

    TEXT = "text"
    IMAGE = "image"
    COMBINED = "combined"
    ANY = "any"

    @classmethod
    def parse(cls, value: str | Target) -> Target:
        try:
            return cls(value)
        except ValueError:
            allowed = "|".join(t.value for t in cls)
            raise ValidationError("target", f"unknown target {value!r}", f"use one of {allowed}") from None

    def kinds(self) -> tuple[VectorKind, ...]:
        if self is Target.ANY:
            return tuple(VectorKind)
        return (VectorKind(self.value),)


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog entry. ``image`` is a path (absolute, or relative to the catalog file) or raw bytes."""

    id: str
    modality: Modality
    title: str = ""
    text: str = ""
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    image: ImageSource | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def create(
        cls,
        id: str,
        *,
        title: str = "",
        text: str = "",
        attributes: Mapping[str, Any] | None = None,
        image: ImageSource | None = None,
        modality: str | Modality | None = None,
        created_at: float | None = None,
    ) -> Item:
        """Validate the fields and build an item; the modality is inferred when not given."""
        check_id(id)
        attrs = check_attributes(attributes or {}, item=id)
        if not isinstance(title, str) or not isinstance(text, str):
            raise ValidationError("title/text", "must be strings", item=id)
        check_unicode("title", title, item=id)
        check_unicode("text", text, item=id)
        has_text = bool(title.strip() or text.strip())
        if modality is None:
            if image is not None:
                modality = Modality.IMAGE_TEXT if has_text else Modality.IMAGE
            elif has_text:
                modality = Modality.TEXT
            else:
                raise ValidationError(
                    "text", "the item has no title, text or image", "give at least one of them", item=id
                )
        mod = Modality.parse(modality, item=id)
        if mod in (Modality.IMAGE, Modality.IMAGE_TEXT) and image is None:
            raise ValidationError("image", f"a {mod.value} item needs an image", "add the image field", item=id)
        if mod in (Modality.TEXT, Modality.IMAGE_TEXT) and not has_text:
            raise ValidationError("text", f"a {mod.value} item needs a title or text", "add title or text", item=id)
        now = time.time()
        return cls(id, mod, title, text, attrs, image, created_at or now, now)

    @property
    def document_text(self) -> str:
        """The text that is embedded: title and body together."""
        return ". ".join(p for p in (self.title.strip(), self.text.strip()) if p)

    def vector_kinds(self) -> tuple[VectorKind, ...]:
        """The vectors this item carries."""
        if self.modality is Modality.TEXT:
            return (VectorKind.TEXT,)
        if self.modality is Modality.IMAGE:
            return (VectorKind.IMAGE,)
        return (VectorKind.TEXT, VectorKind.IMAGE, VectorKind.COMBINED)


def check_id(id: object) -> str:
    if not isinstance(id, str) or not id.strip():
        raise ValidationError("id", "missing or empty", "give every item a non-empty string id")
    if len(id) > MAX_ID_LENGTH:
        raise ValidationError("id", f"longer than {MAX_ID_LENGTH} characters", "use a shorter id", item=id[:40])
    if any(ord(c) < 32 for c in id):
        raise ValidationError("id", "contains control characters", "use printable characters only", item=repr(id))
    check_unicode("id", id, item=repr(id))
    return id


def check_unicode(field: str, value: str, *, item: str | None = None) -> None:
    """Refuse lone UTF-16 surrogates: such text cannot be stored or sent back as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            field, "contains invalid Unicode (a lone surrogate)", "send valid UTF-8 text", item=item
        ) from None


def check_attributes(attributes: Mapping[str, Any], *, item: str | None = None) -> dict[str, AttributeValue]:
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes", "must be an object of name → value", item=item)
    out: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("attributes", f"attribute name {name!r} is not a non-empty string", item=item)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"attributes.{name}", "is NaN or infinite", "use a finite number", item=item)
        if not isinstance(value, (str, int, float, bool)):
            raise ValidationError(
                f"attributes.{name}", f"has type {type(value).__name__}", "use a string, number or boolean", item=item
            )
        check_unicode("attributes", name, item=item)
        if isinstance(value, str):
            check_unicode(f"attributes.{name}", value, item=item)
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Query:
    """A search request: text and/or an image, filters, how many hits and which vectors to compare with.

    ``filters`` maps an attribute to a value (equality), a list (``in``) or a dict with any of
    ``gt``, ``gte``, ``lt``, ``lte`` (numeric range).
    """

    text: str | None = None
    image: ImageSource | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    k: int = 10
    target: Target = Target.ANY
    mode: str | None = None  # None: the index's default mode (an index setting)
    user: str | None = None

    def __post_init__(self) -> None:
        text = self.text.strip() if isinstance(self.text, str) else self.text
        if not text and self.image is None:
            raise ValidationError("query", "is empty", "give a text, an image, or both")
        if isinstance(self.text, str):
            check_unicode("text", self.text)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise ValidationError("k", f"must be an integer from 1 to {MAX_K}, got {self.k!r}", "pass e.g. k=10")
        object.__setattr__(self, "target", Target.parse(self.target))
        if not isinstance(self.filters, Mapping):
            raise ValidationError("filters", "must be an object of attribute → condition")


IdArray = npt.NDArray[np.object_]
ScoreArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Hits:
    """Ranked results: aligned ids and scores, best first, with the strategy that produced each."""

    ids: IdArray
    scores: ScoreArray
    provenance: tuple[str, ...] = ()

    @classmethod
    def empty(cls) -> Hits:
        return cls(np.empty(0, dtype=object), np.empty(0, dtype=np.float32))

    @classmethod
    def of(cls, ids: Sequence[str], scores: Sequence[float], source: str = "") -> Hits:
        ids_arr = np.empty(len(ids), dtype=object)
        ids_arr[:] = list(ids)
        prov = (source,) * len(ids) if source else ()
        return cls(ids_arr, np.asarray(scores, dtype=np.float32), prov)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: Sequence[int]) -> Hits:
        """The hits at the given positions, in that order."""
        idx = np.asarray(positions, dtype=np.int64)
        prov = tuple(self.provenance[i] for i in idx.tolist()) if self.provenance else ()
        return Hits(self.ids[idx], self.scores[idx], prov)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self.ids.tolist(), self.scores.tolist(), strict=True)
