"""Immutable records that flow between the stages: :class:`Item`, :class:`Query`, :class:`Hits`."""

from __future__ import annotations

import enum
import functools
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from .errors import ValidationError, brief, check_length
from .media_loaders import TEXT, MediaRef, check_media, check_medium

#: An attribute's value: a JSON value (a string, number, boolean or null, a list of values, an object of
#: name → value), stored and given back exactly as given (a tuple comes back as a list).
AttributeValue: TypeAlias = "str | int | float | bool | None | list[AttributeValue] | dict[str, AttributeValue]"
ImageSource = MediaRef

MAX_K = 10_000

# Limits on an item's fields, in characters (Python ``len``), checked by :meth:`Item.create`: an item over
# one is rejected with a :class:`ValidationError` naming the field, its size, the limit and the fix, and the
# other items of the batch are kept. They bound what one item costs the single writer (text is indexed
# word by word under the write lock: about 0.1 s per 100,000 characters) and sit well above real catalogs
# (Google Merchant Center: title 150, description 5,000, product-detail name 140 and value 1,000
# characters; Amazon: titles of at most 200). A longer document is several items: its pages or passages
# as segments (``parent`` and ``span``). See docs/serving.md, "Item limits".
MAX_ID_LENGTH = 512  #: an item's id (and a parent's)
MAX_TITLE_LENGTH = 1_000  #: a title
MAX_TEXT_LENGTH = 100_000  #: a body text (about 15,000 words, 40 pages)
MAX_ATTRIBUTES = 256  #: attributes per item
MAX_ATTRIBUTE_NAME_LENGTH = 128  #: an attribute's name (and a key inside an attribute's object)
MAX_ATTRIBUTE_VALUE_LENGTH = 1_000  #: an attribute's string value (and each string inside lists and objects)
MAX_ATTRIBUTE_DEPTH = 16  #: how deep lists and objects nest inside one attribute's value
MAX_ATTRIBUTE_VALUES = 4_096  #: values in all of an item's attributes: scalars, list elements and object keys
MAX_MODALITY_LENGTH = 256  #: a modality string (media names joined by +)

SPLIT_FIX = "shorten it or split the document into segments: items with a parent and a span"


class Modality(enum.StrEnum):
    """What an item is made of: its media names and ``text``, joined by ``+`` (media sorted, ``text`` last).

    The three declared members are the modalities of the first releases; any other combination of
    registered media (:mod:`xmodal.media_loaders`) is a valid modality too (``Modality("audio+text")``
    gives a member created on demand, equal to its string), so the set is open.
    """

    TEXT = "text"
    IMAGE = "image"
    IMAGE_TEXT = "image+text"  # a product: an image and its text

    @classmethod
    def _missing_(cls, value: object) -> Modality | None:
        if not isinstance(value, str):
            return None
        try:
            parts = modality_parts(value)
        except ValidationError:
            return None
        return cls._new_member(join_modality(parts), cls._value2member_map_)

    @classmethod
    def unchecked(cls, value: str) -> Modality:
        """The modality of a stored string, without looking its media up, so a stored item reads back even
        where its media loader is not installed (such a modality is not taken as checked by :meth:`parse`)."""
        known = cls._value2member_map_.get(value)
        if isinstance(known, cls):
            return known
        return cls._new_member(value, _UNCHECKED)

    @classmethod
    def _new_member(cls, value: str, members: dict[Any, Any]) -> Modality:
        """A member created on demand for ``value``, kept in ``members``."""
        found = members.get(value)
        if isinstance(found, cls):
            return found
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        found = members.setdefault(value, member)
        return found if isinstance(found, cls) else member

    @classmethod
    def parse(cls, value: str | Modality, *, item: str | None = None) -> Modality:
        """The modality of a string, or a :class:`ValidationError` naming the unknown part."""
        known = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if isinstance(known, cls):  # a declared member, or one already checked and created
            return known
        modality_parts(value, item=item)  # the precise error, when there is one (not a string, too long, ...)
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ValidationError(
                "modality", f"unknown modality {brief(value)}", f"use one of {allowed} (or media+text)", item=item
            ) from None

    @property
    def parts(self) -> frozenset[str]:
        """The media names of this modality, plus ``text`` when its text is embedded."""
        return _parts(self.value)

    @property
    def media(self) -> frozenset[str]:
        """The media names of this modality (``text`` left out)."""
        return self.parts - {TEXT}


_UNCHECKED: dict[str, Modality] = {}  # modalities read back from a store, their media not looked up


@functools.lru_cache(maxsize=256)
def _parts(value: str) -> frozenset[str]:
    return frozenset(value.split("+"))


def modality_parts(value: str, *, item: str | None = None) -> frozenset[str]:
    """The parts of a modality string, each ``text`` or a medium a loader exists for."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "modality", f"{brief(value)} is not a modality", "e.g. text, image or image+text", item=item
        )
    check_length("modality", value, MAX_MODALITY_LENGTH, "e.g. text, image or image+text", item=item)
    parts = [p.strip() for p in value.split("+")]
    for part in parts:
        if part != TEXT:
            try:
                check_medium(part, item=item, field="modality")
            except ValidationError as exc:
                raise ValidationError(
                    "modality",
                    f"unknown modality {brief(value)}: {exc.problem}",
                    "use text, image, image+text, or media names (and text) joined by +",
                    item=item,
                ) from None
    return frozenset(parts)


def join_modality(parts: frozenset[str] | set[str]) -> str:
    """The canonical modality string of parts: media sorted, then ``text``."""
    return "+".join([*sorted(parts - {TEXT}), *([TEXT] if TEXT in parts else [])])


def modality_family(modality: str) -> Modality:
    """One of the three declared modalities standing for any modality: text only, media only, or media with
    text (how the generative index, trained with three modality codes, places a new medium)."""
    parts = Modality.parse(modality).parts
    if parts == {TEXT}:
        return Modality.TEXT
    return Modality.IMAGE_TEXT if TEXT in parts else Modality.IMAGE


class VectorKind(enum.StrEnum):
    """The vector kinds of the bundled encoders (Nova design: text, image, and their renormalised mean).

    Vector kinds are strings: an encoder declares the kinds it makes (:func:`xmodal.encoders.kinds_of`),
    and a kind need not be one of these members (they equal and hash like their strings).
    """

    TEXT = "text"
    IMAGE = "image"
    COMBINED = "combined"


#: The order in which an item's vector stands for the whole item (similar items, semantic IDs): the
#: combined vector of a product, else its only vector. It is the only such order: every part that needs
#: "the" vector of an item uses :func:`primary_kind`; a kind not listed (a third-party encoder's) comes
#: after these, in name order.
PRIMARY_ORDER: tuple[VectorKind, ...] = (VectorKind.COMBINED, VectorKind.TEXT, VectorKind.IMAGE)


def primary_kind(kinds: Iterable[str]) -> str | None:
    """The kind, among ``kinds``, that stands for an item (:data:`PRIMARY_ORDER`), or None when there is none."""
    present = set(kinds)
    for kind in PRIMARY_ORDER:
        if kind in present:
            return kind.value
    return min(present) if present else None


def primary_vector(vectors: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The vector that stands for an item (:data:`PRIMARY_ORDER`), or None when it has none."""
    kind = primary_kind(vectors)
    return None if kind is None else vectors[kind]


class Target(enum.StrEnum):
    """Which vectors a query is compared with: ``any`` (the best score per item over every kind) or one
    vector kind. The members name the bundled kinds; a target may be any kind an index's encoder declares
    (``Query(target="glyphs")``), so a query's ``target`` is a string, checked against the index when it
    is searched (:meth:`xmodal.Engine.search_vector`)."""

    TEXT = "text"
    IMAGE = "image"
    COMBINED = "combined"
    ANY = "any"

    @classmethod
    def parse(cls, value: object) -> str:
        """``value`` as a target string (a member's value or another vector kind's name)."""
        if isinstance(value, str) and KIND_NAME.fullmatch(value):
            return str(value)
        raise ValidationError(
            "target", f"not a vector kind name: {value!r}", "use any, or a vector kind such as text, image, combined"
        )


#: the shape of a vector kind's name (a folder name in the local backend's checkpoint), and so of a target
KIND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class Span:
    """Where a segment sits in its parent: a ``page`` number, or ``start``/``end`` seconds (end optional)."""

    page: int | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def parse(cls, value: object, *, item: str | None = None) -> Span | None:
        """A span from ``None``, a page number, ``{"page": n}``, ``{"start": s, "end": e}`` or ``[s, e]``."""
        if value is None or isinstance(value, Span):
            return value
        fix = 'give a page number (3), {"page": 3}, {"start": 12.5, "end": 20} or [12.5, 20]'
        if isinstance(value, int) and not isinstance(value, bool):
            value = {"page": value}
        elif isinstance(value, (list, tuple)) and len(value) in (1, 2):
            value = dict(zip(("start", "end"), value, strict=False))
        if not isinstance(value, Mapping) or not value or set(value) - {"page", "start", "end"}:
            raise ValidationError("span", f"{brief(value)} is not a span", fix, item=item)
        page, start, end = value.get("page"), value.get("start"), value.get("end")
        if page is not None and (start is not None or end is not None):
            raise ValidationError("span", "has both a page and seconds", "give one of them", item=item)
        if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 0):
            raise ValidationError("span.page", f"{brief(page)} is not a page number", "give an integer ≥ 0", item=item)
        for name, sec in (("start", start), ("end", end)):
            if sec is not None and (
                isinstance(sec, bool) or not isinstance(sec, (int, float)) or not math.isfinite(sec) or sec < 0
            ):
                raise ValidationError(
                    f"span.{name}", f"{brief(sec)} is not a time in seconds", "give a number ≥ 0", item=item
                )
        if page is None and start is None:
            raise ValidationError("span", "has an end but no start", fix, item=item)
        if start is not None and end is not None and end < start:
            raise ValidationError("span.end", f"{end} is before the start {start}", "give end ≥ start", item=item)
        return cls(page, None if start is None else float(start), None if end is None else float(end))

    @property
    def position(self) -> float:
        """The number a span filter compares: the page, or the start in seconds."""
        return float(self.page if self.page is not None else self.start or 0.0)

    def to_dict(self) -> dict[str, float | int]:
        """``{"page": n}`` or ``{"start": s, "end": e}`` (absent parts left out)."""
        return {k: v for k, v in (("page", self.page), ("start", self.start), ("end", self.end)) if v is not None}


#: Filter names an item's own fields take (see :mod:`xmodal.filters`); no attribute may use them.
RESERVED_ATTRIBUTES = ("parent", "span")


@dataclass(frozen=True, slots=True, init=False)
class Item:
    """One catalog entry.

    ``media`` maps a medium name (``image``, or any registered media loader) to a path (absolute, or
    relative to the catalog file) or raw bytes; ``item.image`` is ``media["image"]``. A segment (a page,
    a clip) names the item it belongs to in ``parent`` and where it sits in ``span``.
    """

    id: str
    modality: Modality
    title: str
    text: str
    attributes: Mapping[str, AttributeValue]
    media: Mapping[str, MediaRef]
    created_at: float
    updated_at: float
    parent: str | None
    span: Span | None

    def __init__(
        self,
        id: str,
        modality: Modality | str,
        title: str = "",
        text: str = "",
        attributes: Mapping[str, AttributeValue] | None = None,
        image: ImageSource | None = None,
        created_at: float = 0.0,
        updated_at: float = 0.0,
        *,
        media: Mapping[str, MediaRef] | None = None,
        parent: str | None = None,
        span: Span | None = None,
    ) -> None:
        """The raw constructor (no checks; stored items come back through it): use :meth:`create`."""
        all_media = dict(media) if media else {}
        if image is not None:
            all_media["image"] = image
        put = object.__setattr__
        put(self, "id", id)
        put(self, "modality", modality if isinstance(modality, Modality) else Modality.unchecked(modality))
        put(self, "title", title)
        put(self, "text", text)
        put(self, "attributes", attributes if attributes is not None else {})
        put(self, "media", all_media)
        put(self, "created_at", created_at)
        put(self, "updated_at", updated_at)
        put(self, "parent", parent)
        put(self, "span", span)

    @classmethod
    def create(
        cls,
        id: str,
        *,
        title: str = "",
        text: str = "",
        attributes: Mapping[str, Any] | None = None,
        image: ImageSource | None = None,
        media: Mapping[str, Any] | None = None,
        modality: str | Modality | None = None,
        parent: str | None = None,
        span: Span | Mapping[str, Any] | int | Sequence[float] | None = None,
        created_at: float | None = None,
    ) -> Item:
        """Validate the fields and build an item; the modality is inferred when not given (every medium
        the item has, plus ``text`` when it has a title or text)."""
        check_id(id)
        attrs = check_attributes(attributes or {}, item=id)
        for name in RESERVED_ATTRIBUTES:
            if name in attrs:
                raise ValidationError(
                    f"attributes.{name}", f"{name!r} is an item field", f"give it as the item's {name}", item=id
                )
        if not isinstance(title, str) or not isinstance(text, str):
            raise ValidationError("title/text", "must be strings", item=id)
        check_length("title", title, MAX_TITLE_LENGTH, "shorten it (longer prose goes in text)", item=id)
        check_length("text", text, MAX_TEXT_LENGTH, SPLIT_FIX, item=id)
        check_unicode("title", title, item=id)
        check_unicode("text", text, item=id)
        all_media = check_media(media, item=id)
        if image is not None:
            if "image" in all_media and all_media["image"] != image:
                raise ValidationError("image", "is given both as image and as media.image", "keep one", item=id)
            all_media["image"] = check_media({"image": image}, item=id)["image"]
        if parent is not None:
            check_id(parent)
            if parent == id:
                raise ValidationError("parent", "is the item itself", "name another item's id", item=id)
        has_text = bool(title.strip() or text.strip())
        present = set(all_media) | ({TEXT} if has_text else set())
        if modality is None:
            if not present:
                raise ValidationError(
                    "text",
                    "the item has no title, text or image (or other media)",
                    "give at least one of them",
                    item=id,
                )
            modality = join_modality(present) if all_media else TEXT
        mod = Modality.parse(modality, item=id)
        for part in sorted(mod.parts - present):
            if part == TEXT:
                raise ValidationError("text", f"a {mod.value} item needs a title or text", "add title or text", item=id)
            field_name = "image" if part == "image" else f"media.{part}"
            raise ValidationError(field_name, f"a {mod.value} item needs {part}", f"add the {part} medium", item=id)
        now = time.time()
        return cls(
            id,
            mod,
            title,
            text,
            attrs,
            None,
            created_at or now,
            now,
            media=all_media,
            parent=parent,
            span=Span.parse(span, item=id),
        )

    @property
    def image(self) -> MediaRef | None:
        """The ``image`` medium (a convenience for ``media.get("image")``)."""
        return self.media.get("image")

    @property
    def document_text(self) -> str:
        """The text that is embedded: title and body together."""
        return ". ".join(p for p in (self.title.strip(), self.text.strip()) if p)

    def filter_fields(self) -> dict[str, AttributeValue]:
        """What filters see: the attributes, plus ``parent`` and the span's position when the item has them."""
        out = dict(self.attributes)
        if self.parent is not None:
            out["parent"] = self.parent
        if self.span is not None:
            out["span"] = self.span.position
        return out

    def vector_kinds(self) -> tuple[VectorKind, ...]:
        """The vectors this item carries with an encoder of the bundled kinds (text, image, combined)."""
        if self.modality is Modality.TEXT:
            return (VectorKind.TEXT,)
        if self.modality is Modality.IMAGE:
            return (VectorKind.IMAGE,)
        return (VectorKind.TEXT, VectorKind.IMAGE, VectorKind.COMBINED)


def check_id(id: object) -> str:
    if not isinstance(id, str) or not id.strip():
        raise ValidationError("id", "missing or empty", "give every item a non-empty string id")
    check_length("id", id, MAX_ID_LENGTH, "use a shorter id", item=id[:40])
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
    """A copy of ``attributes`` as JSON values (tuples become lists), or a :class:`ValidationError` naming
    the attribute (``attributes.meta.sizes[2]``), what is wrong and the limit or the fix."""
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes", "must be an object of name → value", item=item)
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValidationError(
            "attributes",
            f"has {len(attributes):,} attributes, more than the limit of {MAX_ATTRIBUTES:,}",
            "keep the ones filters need and put the rest in text",
            item=item,
        )
    checker = _AttributeChecker(item)
    return {
        checker.name(name, "attributes"): checker.value(value, f"attributes.{name}", 0)
        for name, value in attributes.items()
    }


class _AttributeChecker:
    """Checks one item's attribute values, counting them against :data:`MAX_ATTRIBUTE_VALUES`."""

    def __init__(self, item: str | None) -> None:
        self.item = item
        self.count = 0

    def name(self, name: object, field: str) -> str:
        if not isinstance(name, str) or not name:
            raise ValidationError(field, f"attribute name {brief(name)} is not a non-empty string", item=self.item)
        check_length(f"{field}.{name[:40]}", name, MAX_ATTRIBUTE_NAME_LENGTH, "use a shorter name", item=self.item)
        check_unicode(field, name, item=self.item)
        return name

    def value(self, value: object, field: str, depth: int) -> AttributeValue:
        self.count += 1
        if self.count > MAX_ATTRIBUTE_VALUES:
            raise ValidationError(
                "attributes",
                f"hold more than the limit of {MAX_ATTRIBUTE_VALUES:,} values (list elements and keys included)",
                "keep the ones filters need and put the rest in text",
                item=self.item,
            )
        if isinstance(value, (Mapping, list, tuple)):
            return self._container(value, field, depth + 1)
        return self._scalar(value, field)

    def _container(
        self, value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], field: str, depth: int
    ) -> AttributeValue:
        if depth > MAX_ATTRIBUTE_DEPTH:
            raise ValidationError(
                field,
                f"nests lists and objects more than the limit of {MAX_ATTRIBUTE_DEPTH} levels deep",
                "flatten it (join inner names into one, e.g. dims_width)",
                item=self.item,
            )
        if isinstance(value, Mapping):
            return {self.name(k, field): self.value(v, f"{field}.{k}", depth) for k, v in value.items()}
        return [self.value(v, f"{field}[{i}]", depth) for i, v in enumerate(value)]

    def _scalar(self, value: object, field: str) -> AttributeValue:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(field, "is NaN or infinite", "use a finite number", item=self.item)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**1023:
            raise ValidationError(
                field, "is too large a number to compare", "use a smaller number or a string", item=self.item
            )
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValidationError(
                field,
                f"has type {type(value).__name__}",
                "use a string, number, boolean, null, a list or an object of them",
                item=self.item,
            )
        if isinstance(value, str):
            check_length(
                field, value, MAX_ATTRIBUTE_VALUE_LENGTH, "shorten it (long prose goes in text)", item=self.item
            )
            check_unicode(field, value, item=self.item)
        return value


@dataclass(frozen=True, slots=True)
class Query:
    """A search request: text and/or media (an image, or any medium by name), filters, how many hits and
    which vectors to compare with.

    ``filters`` maps an attribute path (``color``, ``meta.brand``; or ``parent``, ``span``) to a value
    (equality), a list (any of them) or an object of operators (``ne``, ``in``, ``gte``, ``exists``...), and
    ``and`` / ``or`` / ``not`` to nested filters: the language of :mod:`xmodal.filters`. A path no item has
    matches nothing, unless ``strict`` is set: then it is a :class:`ValidationError` naming the known ones.
    ``group="parent"`` returns one hit, the best, per parent item (an item without a parent is its own).
    ``offset`` skips that many hits before the ``k`` returned (the next page; past the end: no hits).
    ``logged``: the caller records this search's impression (``Engine.search(log=True)`` sets it), so
    feedback can follow; only such a search may explore (:mod:`xmodal.ltr.exploration`).
    ``safe``: like a web engine's SafeSearch, how the guards treat sensitive images and toxic text in the
    hits — ``strict``, ``moderate`` (None: the guards policy as it is) or ``off`` (:mod:`xmodal.guards.results`).
    """

    text: str | None = None
    image: ImageSource | None = None
    filters: Mapping[str, Any] = field(default_factory=dict)
    k: int = 10
    target: str = Target.ANY  # "any" or a vector kind
    mode: str | None = None  # None: the index's default mode (an index setting)
    user: str | None = None
    media: Mapping[str, MediaRef] = field(default_factory=dict)  # other media than the image, by name
    group: str | None = None  # "parent": one best hit per parent
    strict: bool = False  # a filter on an attribute no item has is an error (instead of matching nothing)
    offset: int = 0  # hits to skip before the k returned (pagination); past the end: no hits
    logged: bool = False  # the impression is recorded (feedback can follow)
    safe: str | None = None  # SafeSearch level: "strict", "moderate" or "off" (None: the guards policy)

    def __post_init__(self) -> None:
        text = self.text.strip() if isinstance(self.text, str) else self.text
        if not text and self.image is None and not self.media:
            raise ValidationError("query", "is empty", "give a text, an image (or another medium), or both")
        object.__setattr__(self, "media", check_media(self.media, item="query"))
        if self.group not in GROUPS:
            raise ValidationError("group", f"unknown grouping {self.group!r}", "use group='parent' or none")
        if isinstance(self.text, str):
            check_unicode("text", self.text)
        check_k(self.k)
        check_offset(self.offset, self.k)
        object.__setattr__(self, "target", Target.parse(self.target))
        if not isinstance(self.filters, Mapping):
            raise ValidationError("filters", "must be an object of attribute → condition")
        if not isinstance(self.strict, bool):
            raise ValidationError("strict", f"must be true or false, got {brief(self.strict)}")
        if not isinstance(self.logged, bool):
            raise ValidationError("logged", f"must be true or false, got {brief(self.logged)}")
        if self.safe is not None and self.safe not in SAFE_LEVELS:
            raise ValidationError("safe", f"unknown level {brief(self.safe)}", f"use one of {', '.join(SAFE_LEVELS)}")

    def all_media(self) -> dict[str, MediaRef]:
        """Every medium of the query by name, the image included."""
        return {**self.media, **({"image": self.image} if self.image is not None else {})}


GROUPS = (None, "parent")
#: A query's ``safe`` levels, strictest first (SafeSearch-like; :mod:`xmodal.guards.results`).
SAFE_LEVELS = ("strict", "moderate", "off")


def check_k(k: object) -> None:
    """Refuse a ``k`` (hits asked for) that is not an integer from 1 to :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValidationError("k", f"must be an integer from 1 to {MAX_K}, got {k!r}", "pass e.g. k=10")


def check_offset(offset: object, k: int) -> None:
    """Refuse an ``offset`` that is not an integer from 0 to ``MAX_K - k`` (a page past the end is fine)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_K - k:
        raise ValidationError(
            "offset",
            f"must be an integer from 0 to {MAX_K - k} (offset + k at most {MAX_K}), got {offset!r}",
            "pass e.g. offset=20 for the third page of 10, or narrow the search with filters",
        )


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
