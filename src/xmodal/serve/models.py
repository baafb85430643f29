"""Request and response models of the REST API (they make the OpenAPI spec precise)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..collection import MAX_PAGE
from ..media_loaders import available_media
from ..records import GROUPS, KIND_NAME, SAFE_LEVELS, Target
from .policy import MAX_K, MAX_QUERY_TEXT

AttrValue = bool | int | float | str  # a facet's value
ATTRIBUTES_HELP = (
    "name → value: a string, number, boolean or null, or lists and objects of them (nested up to 16 levels); "
    "given back exactly as sent"
)
FILTERS_HELP = (
    "attribute path (a name or a dotted path: meta.brand) → value, list of values, or an object of operators "
    "(eq, ne, in, nin, all, contains, gt, gte, lt, lte, exists, is_null, is_empty, text_contains, not); "
    "and/or/not join filters; $-operators ($in, $or...) are aliases"
)
Strict = ConfigDict(extra="forbid")
MAX_VECTOR = 16_384  # numbers in a query vector (an index's dimension is far below)
SpanValue = dict[str, int | float]


def _media_names() -> str:
    """The media this server knows by name, from the media loader registry (and the index's allowed dotted paths)."""
    return ", ".join(available_media())


MODALITY_HELP = (
    f"text, or media names joined by '+' with text last (media here: {_media_names()}; "
    "or a loader's dotted path named in the index setting 'media'), e.g. image+text"
)
SPAN_HELP = 'where a segment sits in its parent: {"page": 3} or {"start": 12.5, "end": 20.0} (seconds)'
GROUP_PATTERN = "^(" + "|".join(g for g in GROUPS if g) + ")$"
SAFE_PATTERN = "^(" + "|".join(SAFE_LEVELS) + ")$"
SAFE_HELP = (
    "SafeSearch level for sensitive images and toxic text in the hits: strict (left out), moderate (the guards "
    "policy, the default) or off (shown); PII redaction is the policy's alone. A hit the guards flag says why "
    "under 'guard'"
)
TARGET_PATTERN = f"^{KIND_NAME.pattern}$"
TARGET_HELP = "which item vectors to compare with: any (the best per item) or one vector kind of the index"


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: what is wrong, which field, how to fix it, and the request id to quote."""

    error: str
    field: str | None = None
    fix: str | None = None
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None
    type: str | None = Field(
        None,
        description="the xmodal error class the engine raised (ValidationError, ImageError, NotFoundError, "
        "ConfigError, StorageError, DiskFull); absent for the server's own refusals. xmodal.Client raises that class",
    )


class QueryIn(BaseModel):
    """One query: text and/or a base64 image, or your own vector; filters, k, offset, target, mode, grouping."""

    model_config = Strict
    text: str | None = Field(None, max_length=MAX_QUERY_TEXT)
    image_base64: str | None = Field(None, description="an image file, base64-encoded")
    vector: list[float] | None = Field(
        None,
        max_length=MAX_VECTOR,
        description="search with your own query vector (the index's dimension; finite numbers) instead of text "
        "or an image: a dense search, not logged",
    )
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)
    strict: bool = Field(
        False, description="a filter on an attribute no item has is an error (else it matches nothing)"
    )
    k: int = Field(10, ge=1, le=MAX_K)
    offset: int = Field(
        0,
        ge=0,
        le=MAX_K,
        description="hits to skip before the k returned (offset + k at most MAX_K); past the end: no hits",
    )
    target: str = Field(Target.ANY.value, pattern=TARGET_PATTERN, description=TARGET_HELP)
    mode: str | None = Field(
        None, max_length=64, description="a search mode (`xmodal modes` lists them); default: the index's default mode"
    )
    group: str | None = Field(
        None, pattern=GROUP_PATTERN, description="'parent': one hit, the best, per parent item (segments grouped)"
    )
    safe: str | None = Field(None, pattern=SAFE_PATTERN, description=SAFE_HELP)


CURSOR_HELP = (
    "a response's next_cursor, sent back with the same query (or filters) for the next page, instead of offset; "
    "valid for an hour on the index that issued it"
)
SPOTLIGHT_HELP = (
    "also give 'spotlight': each hit's title and text inside ⟦catalog-data⟧ markers, for an agent (catalog text "
    "is data, never instructions)"
)
WITH_VECTORS_HELP = "give each hit's vector (the kind it was found by; else its primary vector) as 'vector'"


class SearchRequest(QueryIn):
    """A JSON search: text and/or a base64 image, filters (attribute → value, list or range), k, target, mode."""

    explain: bool = False
    user: str | None = Field(None, max_length=256)
    log: bool = Field(True, description="record an impression for feedback (when the engine learns from it)")
    with_vectors: bool = Field(False, description=WITH_VECTORS_HELP)
    cursor: str | None = Field(None, max_length=4096, description=CURSOR_HELP)
    spotlight: bool = Field(False, description=SPOTLIGHT_HELP)
    audio_base64: str | None = Field(
        None,
        description="a sound file, base64-encoded (or a multipart file part 'audio'): items that sound like it, "
        "by the 'audio' vectors of an index made with the audio encoder",
    )


class BatchSearchRequest(BaseModel):
    """Several searches in one request, answered in order; text and image queries are encoded together and
    the dense ones that share a target and filters searched in one matrix operation."""

    model_config = Strict
    queries: list[QueryIn] = Field(min_length=1, description="the searches (at most the server's max_batch)")
    with_vectors: bool = Field(False, description=WITH_VECTORS_HELP)
    explain: bool = False
    user: str | None = Field(None, max_length=256)
    log: bool = Field(False, description="record each text or image search's impression for feedback")


class ItemOut(BaseModel):
    """An item in the one view shared with the CLI and MCP (:func:`xmodal.view.item_view`).

    Fields an item gains later pass through as extra properties."""

    model_config = ConfigDict(extra="allow")
    id: str
    modality: str = Field(description=MODALITY_HELP)
    title: str
    text: str
    attributes: dict[str, Any] = Field(description=ATTRIBUTES_HELP)
    media: dict[str, str] = Field(default_factory=dict, description="medium name → stored reference in the index")
    image: str | None = Field(None, description="the stored image's reference in the index folder (media.image)")
    created_at: float
    updated_at: float
    parent: str | None = Field(None, description="the id of the item this one is a segment of")
    span: SpanValue | None = Field(None, description=SPAN_HELP)
    media_url: str | None
    thumbnail_url: str | None


def _hit_vector(schema: dict[str, Any]) -> None:
    """A hit's ``vector`` in the spec: passed through (not a field, so a hit without one has no such key)."""
    vector = {"type": "array", "items": {"type": "number"}, "description": "with_vectors only: " + WITH_VECTORS_HELP}
    schema.setdefault("properties", {})["vector"] = vector
    schema["properties"]["snippet"] = {
        "type": "string",
        "description": "a segment hit of a text query: the passage of its text with the query's words marked **so**",
    }


class Hit(ItemOut):
    """A ranked item: its view (:func:`xmodal.view.hit_view`), score and provenance (and its ``vector``, when
    asked for with ``with_vectors``)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_hit_vector)
    score: float
    provenance: str = Field(description="the strategy that found this hit, e.g. dense:combined")


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float
    encode_ms: float
    query_id: str | None = Field(None, description="quote it in POST /feedback")
    explain: dict[str, Any] | None = Field(None, description="with explain=true: the plan, each strategy's part")
    next_cursor: str | None = Field(None, description="send it as cursor, with the same query, for the next page")
    spotlight: list[str] | None = Field(
        None, description="with spotlight=true: each hit's title and text inside data markers, aligned with hits"
    )


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse] = Field(description="one per query, in order")


class GetManyRequest(BaseModel):
    """Many items by id in one request."""

    model_config = Strict
    ids: list[str] = Field(max_length=100_000, description="item ids (at most the server's max_batch)")
    with_vectors: bool = Field(False, description="give each item's vectors by kind as 'vectors'")
    safe: str | None = Field(None, pattern=SAFE_PATTERN, description=SAFE_HELP)


class ScrollRequest(BaseModel):
    """A page of the items that match ``filters`` (every item without), in the order they were first added."""

    model_config = Strict
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)
    strict: bool = Field(False, description="a filter on an attribute no item has is an error")
    limit: int = Field(100, ge=1, le=MAX_PAGE, description="items per page")
    cursor: str | None = Field(None, max_length=4096, description=CURSOR_HELP)
    with_vectors: bool = Field(False, description="give each item's vectors by kind as 'vectors'")
    safe: str | None = Field(None, pattern=SAFE_PATTERN, description=SAFE_HELP)


class ItemWithVectors(ItemOut):
    vectors: dict[str, list[float]] | None = Field(None, description="with with_vectors=true only: kind → vector")


class ScrollResponse(BaseModel):
    items: list[ItemWithVectors]
    next_cursor: str | None = Field(description="send it as cursor, with the same filters, for the next page")
    withheld: dict[str, int] = Field(
        default_factory=dict, description="items of this page the guards left out for this caller, by category"
    )


class GetManyResponse(BaseModel):
    items: list[ItemWithVectors] = Field(description="the items found, in the order asked (each id once)")
    missing: list[str] = Field(description="ids the index does not hold")
    withheld: dict[str, str] = Field(
        default_factory=dict, description="ids the guards withheld from this caller, with the category"
    )


class ItemIn(BaseModel):
    """One item to add or replace. Images (and other media, by name) come inline (base64) or as multipart
    files (``image_file``, ``media_files``). A segment names its ``parent`` and its ``span``."""

    model_config = Strict
    id: str = Field(min_length=1, max_length=512)
    title: str = ""
    text: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict, description=ATTRIBUTES_HELP)
    modality: str | None = Field(None, max_length=1024, description=MODALITY_HELP + "; inferred when absent")
    image_base64: str | None = None
    image_file: str | None = Field(None, description="multipart only: the filename of an uploaded image part")
    media_base64: dict[str, str] = Field(default_factory=dict, description="medium name → the file, base64-encoded")
    media_files: dict[str, str] = Field(
        default_factory=dict, description="multipart only: medium name → the filename of an uploaded part"
    )
    document_file: str | None = Field(
        None,
        description="multipart only: the filename of an uploaded document (PDF, .txt, .md, .html): the item "
        "becomes its parent, with one segment item per page or chunk (id#p1, id#p2…)",
    )
    document_base64: str | None = Field(
        None, description="a document, base64-encoded (give its file name in document_name: its suffix says the type)"
    )
    document_name: str | None = Field(None, max_length=1024, description="the file name of document_base64")
    parent: str | None = Field(None, min_length=1, max_length=512, description="the id of the item this is part of")
    span: int | SpanValue | list[float] | None = Field(None, description=SPAN_HELP + ", a page number or [start, end]")
    vectors: dict[str, list[float]] | list[float] | None = Field(
        None,
        description="your own vectors, stored instead of encoding the item: vector kind → vector, or one vector "
        "for every kind the item gets (the index's dimension, finite numbers; normalised)",
    )


class ItemsRequest(BaseModel):
    model_config = Strict
    items: list[ItemIn]


class RejectionOut(BaseModel):
    where: str
    reason: str


class AddResponse(BaseModel):
    added: list[str] = Field(description="ids committed (acknowledged writes)")
    rejected: list[RejectionOut]


class DeleteResponse(BaseModel):
    id: str
    deleted: bool


class CountRequest(BaseModel):
    """Count the items that match a filter (every item without one)."""

    model_config = Strict
    filters: dict[str, Any] = Field(default_factory=dict, description=FILTERS_HELP)
    strict: bool = Field(False, description="a filter on an attribute no item has is an error")


class CountResponse(BaseModel):
    count: int


class DeleteWhereRequest(BaseModel):
    """Delete the items that match ``filters`` (not empty), or every item with ``all: true``."""

    model_config = Strict
    filters: dict[str, Any] | None = Field(None, description=FILTERS_HELP)
    all: bool = Field(False, description="delete every item (instead of giving filters)")
    strict: bool = Field(False, description="a filter on an attribute no item has is an error")
    purge_feedback: bool = Field(False, description="also drop the feedback log's events of the deleted items")


class DeleteWhereResponse(BaseModel):
    deleted: int = Field(description="how many items matched and were deleted (their segments with them)")


class UpdateRequest(BaseModel):
    """New attribute values for an item, stored without encoding it again."""

    model_config = Strict
    attributes: dict[str, Any] = Field(description=ATTRIBUTES_HELP)
    merge: bool = Field(True, description="merge over the old attributes (false: replace them all)")


class FeedbackRequest(BaseModel):
    model_config = Strict
    query_id: str = Field(min_length=1, max_length=128)
    item_id: str = Field(min_length=1, max_length=512)
    event: str = Field("click", pattern=r"^[a-z_]{1,32}$")
    position: int | None = Field(None, ge=0, le=100_000)
    value: float | None = Field(None, allow_inf_nan=False)


class FeedbackResponse(BaseModel):
    recorded: bool


class FacetValue(BaseModel):
    value: AttrValue
    count: int


class FacetsResponse(BaseModel):
    attributes: dict[str, list[FacetValue]] = Field(
        description="attribute path (nested attributes by dotted path, list elements counted one by one) → values"
    )


class InfoResponse(BaseModel):
    """The index (``Engine.info`` without the server's folder path). Keys added later pass through."""

    model_config = ConfigDict(extra="allow")
    items: int
    modalities: dict[str, int]
    segments: dict[str, int] = Field(
        default_factory=dict, description="modality → items of it that are segments (pages, chunks, clips)"
    )
    vectors: dict[str, int] = Field(description="vector kind → vectors held")
    encoder: dict[str, Any]
    dim: int = Field(description="the index's dimension: the length of a vector for POST /search {vector}")
    backend: str
    index: str
    attributes: list[str]
    extensions: list[str]
    default_mode: str
    modes: list[str]
    schema_version: int


class HealthResponse(BaseModel):
    status: Literal["ok", "stopping"]
    items: int
    write_queue: int
    version: str
