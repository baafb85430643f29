"""Splitters: one file becomes a parent item plus segment items (a document's pages, a recording's windows).

A splitter reads one file (a PDF, a long text, an audio or video file) and returns a :class:`Split`: the
parent's own fields (title, text, attributes such as the page count) and its segments, each a
:class:`Segment` with a :class:`~xmodal.records.Span` (a page number, or start/end seconds) and its own
text and/or media (e.g. ``{"image": png_bytes}`` for a rendered page or a key frame). :func:`split_items`
turns that into items: the parent (id = the file's id) and one item per segment with ``parent`` and
``span`` set (id = ``parent#p3`` for page 3, ``parent#t12.5`` for a segment starting at 12.5 s; the parent's
attribute ``splitter`` names the splitter), which
:meth:`xmodal.Engine.add` encodes like any other item: a segment with text and an image gets a text
vector, an image vector and their combination. Deleting the parent deletes its segments
(:meth:`xmodal.Engine.delete`), and adding a file again through a catalog or a folder
(:func:`xmodal.ingest.catalog.add_catalogs`) replaces its old segments, however many it has now.

Errors: a file that cannot be split at all (encrypted, corrupt, over a limit) raises an
:class:`~xmodal.errors.XmodalError` from :meth:`Splitter.split` naming the file and the fix, and the file
is rejected alone; a segment that fails (OCR of one page, one undecodable window) is yielded as a
:class:`SegmentError` and reported as a rejection naming the file and the page or time, while the other
segments are kept.

Registering a splitter (built-ins lazily by ``"module:Class"``; a third-party package through the entry
point group ``xmodal.splitters``, its suffixes given by the class)::

    from xmodal.splitters import register_splitter

    class WavSplitter:
        name = "audio"
        suffixes = frozenset({".wav", ".mp3"})

        def sniff(self, head: bytes) -> bool:  # do the first bytes look like this kind of file?
            return head[:4] == b"RIFF" or head[:3] == b"ID3"

        def split(self, source: Source, options: SplitOptions) -> Split:
            data = source.read(options.max_bytes)  # or source.path for tools that read the file themselves
            ...  # check the whole file here: raise ValidationError("file", "...", "the fix", item=source.name)
            return Split(title=..., attributes={"seconds": 612.0}, segments=self._windows(data, options))

    register_splitter("audio", WavSplitter, suffixes={".wav", ".mp3"})  # or "package.module:WavSplitter"

``segments`` may be a generator, so a long file streams: segments are encoded and committed in batches
as they come. A splitter reports work per stage with ``options.progress("ocr", 1)`` when a caller asked
for it. Splitters import their heavy libraries inside their methods, so importing this package imports
nothing optional.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, ValidationError, XmodalError
from ..ingest.prepare import Rejection
from ..media_loaders import TEXT, MediaRef
from ..records import Item, Span, join_modality
from ..registry import Registry

#: The default largest file a splitter reads (bytes), and the default page limit of a document.
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_PAGES = 2_000
CHUNK_CHARS = 1_500  # long text: characters per segment
OVERLAP_CHARS = 200  # long text: characters repeated from the previous segment
HEAD_BYTES = 64  # what :meth:`Splitter.sniff` sees
SPLITTER_ATTRIBUTE = "splitter"  # a parent item's attribute: the name of the splitter that made its segments


@dataclass(frozen=True, slots=True)
class SplitOptions:
    """How files are split. ``progress(stage, n)`` is told of work done per stage (``"pages"``, ``"ocr"``,
    ``"decode"``, ``"transcribe"``…) when given; ``extra`` carries options of third-party splitters."""

    max_bytes: int = MAX_FILE_BYTES
    max_pages: int = MAX_PAGES
    ocr: str = "auto"  # "auto": pages without a usable text layer; "always"; "never"
    dpi: int = 150  # page images: rendering resolution for OCR (the stored image is scaled down)
    chunk_chars: int = CHUNK_CHARS
    overlap_chars: int = OVERLAP_CHARS
    max_seconds: float = 4 * 3600.0  # audio and video: the longest file accepted
    images_as_pages: bool = False  # image files read as pages of a document (OCR'd), not as image items
    progress: Callable[[str, int], object] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def report(self, stage: str, n: int = 1) -> None:
        if self.progress is not None:
            self.progress(stage, n)


@dataclass(frozen=True, slots=True)
class Source:
    """A file to split: the parent's ``id``, ``title`` and ``attributes``, and the file as a ``path`` or
    as ``data`` (an upload). ``name`` is how errors name the file."""

    id: str
    name: str
    path: Path | None = None
    data: bytes | None = None
    title: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def read(self, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's bytes, refused over ``max_bytes`` with a :class:`ValidationError`."""
        if self.data is not None:
            size = len(self.data)
        elif self.path is not None:
            try:
                size = self.path.stat().st_size
            except OSError as exc:
                raise ValidationError("file", f"cannot read it ({exc.strerror or exc})", "check the path") from None
        else:
            raise ValidationError("file", "no path and no bytes", "give the file")
        if size > max_bytes:
            raise ValidationError(
                "file",
                f"{size:,} bytes is over the limit of {max_bytes:,}",
                "split the file, or raise the limit (SplitOptions.max_bytes)",
            )
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise ValidationError("file", f"cannot read it ({exc.strerror or exc})", "check the path") from None

    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first ``n`` bytes (what :meth:`Splitter.sniff` looks at)."""
        if self.data is not None:
            return self.data[:n]
        if self.path is None:
            return b""
        try:
            with open(self.path, "rb") as f:
                return f.read(n)
        except OSError:
            return b""


@dataclass(frozen=True, slots=True)
class Segment:
    """One part of a file: where it sits (``span``), its text and its media (``{"image": png_bytes}``)."""

    span: Span
    text: str = ""
    media: Mapping[str, MediaRef] = field(default_factory=dict)
    title: str = ""  # default: "<parent title> — page 3" / "— 0:12–0:20"
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SegmentError:
    """A segment that failed (the others are kept): where (``span``), what went wrong, and the fix."""

    span: Span | None
    problem: str
    fix: str = ""


@dataclass(slots=True)
class Split:
    """What a splitter made of a file: the parent's own fields and its segments (possibly a generator)."""

    segments: Iterable[Segment | SegmentError]
    title: str = ""
    text: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The parent's media: e.g. the recording itself (``{"audio": path}``, kept so a hit can be played) and a
    #: thumbnail (``{"image": jpeg_bytes}``).
    media: dict[str, MediaRef] = field(default_factory=dict)


@runtime_checkable
class Splitter(Protocol):
    """Splits one kind of file (see the module's docstring)."""

    name: str
    suffixes: frozenset[str]

    def sniff(self, head: bytes) -> bool: ...

    def split(self, source: Source, options: SplitOptions) -> Split: ...


def _is_splitter(obj: object) -> bool:
    return isinstance(obj, type) or callable(getattr(obj, "split", None))


#: Splitters by name: registered here, ``xmodal.splitters`` entry points, or ``"package.module:Splitter"``.
SPLITTERS: Registry[Any] = Registry("splitters", "splitter", _is_splitter)
_SUFFIXES: dict[str, str] = {}  # ".pdf" → "pdf"
_instances: dict[str, Splitter] = {}
_registered: set[str] = set()  # names registered here: their suffixes are the ones given, none read from the class


def register_splitter(name: str, part: Any, *, suffixes: Iterable[str]) -> None:
    """Register a splitter (a class, an instance, or a lazy ``"module:Class"``) for the file ``suffixes``
    (``".pdf"``; later registrations of a suffix win)."""
    SPLITTERS.register(name, part)
    _registered.add(name)
    _instances.pop(name, None)
    for suffix in suffixes:
        _SUFFIXES[suffix.lower() if suffix.startswith(".") else "." + suffix.lower()] = name


def unregister_splitter(name: str) -> None:
    """Forget the splitter ``name`` and its suffixes."""
    SPLITTERS.unregister(name)
    _registered.discard(name)
    _instances.pop(name, None)
    for suffix in [s for s, n in _SUFFIXES.items() if n == name]:
        del _SUFFIXES[suffix]


def splitter(name: str) -> Splitter:
    """The splitter called ``name`` (a class is instantiated once), or a :class:`ConfigError`."""
    found = _instances.get(name)
    if found is None:
        part = SPLITTERS.resolve(name)
        found = part() if isinstance(part, type) else part
        if not isinstance(found, Splitter):
            raise ConfigError(f"splitter {name!r} does not implement the splitter protocol (name, sniff, split)")
        _instances[name] = found
    return found


def _entry_point_suffixes() -> None:
    """Suffixes of splitters that only an entry point names (read from their class once)."""
    for name in SPLITTERS.names():
        if name not in _registered and name not in _SUFFIXES.values():
            try:
                for suffix in splitter(name).suffixes:
                    _SUFFIXES.setdefault(suffix.lower(), name)
            except XmodalError:
                continue


def split_suffixes() -> frozenset[str]:
    """Every file suffix a registered splitter takes."""
    _entry_point_suffixes()
    return frozenset(_SUFFIXES)


def splitter_name_for(path: str | Path) -> str | None:
    """The name of the splitter of a file, by its suffix (``None``: no splitter takes it)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        _entry_point_suffixes()
    return _SUFFIXES.get(suffix)


def segment_id(parent: str, span: Span) -> str:
    """The id of a segment: ``parent#p3`` (page 3) or ``parent#t12.5`` (from 12.5 s)."""
    if span.page is not None:
        return f"{parent}#p{span.page}"
    return f"{parent}#t{(span.start or 0.0):g}"


def span_label(span: Span | None) -> str:
    """``page 3``, ``0:12–0:20`` or ``0:12``, as a message or a title names a segment."""
    if span is None:
        return "the file"
    if span.page is not None:
        return f"page {span.page}"
    start = _clock(span.start or 0.0)
    return f"{start}–{_clock(span.end)}" if span.end is not None else start


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    clock = f"{rest // 60}:{rest % 60:02d}"
    return f"{hours}:{clock.zfill(5)}" if hours else clock


def check_content(source: Source, chosen: Splitter) -> None:
    """Refuse a file whose content is not what its extension says (naming what it looks like)."""
    head = source.head()
    if chosen.sniff(head):
        return
    looks = _looks_like(head)
    raise ValidationError(
        "file",
        f"the extension says {chosen.name} but the content is not ({looks})",
        "rename the file to its real type, or check that it was not truncated or corrupted",
        item=source.name,
    )


_MAGIC = (
    (b"%PDF", "a PDF"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (e.g. an office document)"),
    (b"RIFF", "a RIFF file (WAV, AVI or WebP)"),
    (b"ID3", "an MP3 file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC file"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM file"),
    (b"\x7fELF", "an executable"),
)


def _looks_like(head: bytes) -> str:
    if not head:
        return "it is empty"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"it looks like {what}"
    if head[4:8] == b"ftyp":
        return "it looks like an MP4/M4A file"
    if b"\x00" in head:
        return "it is binary data of an unknown kind"
    return "it looks like plain text"


def split_items(source: Source, chosen: Splitter, options: SplitOptions | None = None) -> Iterator[Item | Rejection]:
    """The parent item of ``source`` then its segment items, as ``chosen`` splits it; a file that cannot be
    split gives one :class:`Rejection` (``where`` = the file), a failed segment one naming its page or time."""
    options = options or SplitOptions()
    try:
        check_content(source, chosen)
        split = chosen.split(source, options)
        title = " ".join((split.title or source.title or _title_of(source.name)).split())[:1000]
        parent = Item.create(
            source.id,
            title=title,
            text=split.text,
            attributes={**source.attributes, **split.attributes, SPLITTER_ATTRIBUTE: chosen.name},
            media=split.media or None,
        )
    except XmodalError as exc:
        yield Rejection(source.name, _message(exc, source.name))
        return
    yield parent
    try:
        for segment in split.segments:
            where = f"{source.name} {span_label(segment.span)}"
            if isinstance(segment, SegmentError):
                hint = f" ({segment.fix})" if segment.fix else ""
                yield Rejection(where, f"{segment.problem}{hint}")
                continue
            try:
                yield Item.create(
                    segment_id(source.id, segment.span),
                    title=segment.title or f"{title} — {span_label(segment.span)}",
                    text=segment.text,
                    media=segment.media,
                    modality=_modality(segment),
                    attributes={**source.attributes, **segment.attributes},
                    parent=source.id,
                    span=segment.span,
                )
            except XmodalError as exc:
                yield Rejection(where, str(exc))
    except XmodalError as exc:  # the file failed part way: the segments so far are kept
        yield Rejection(source.name, f"{_message(exc, source.name)}; the segments before it were kept")


def _modality(segment: Segment) -> str | None:
    """A segment's modality from its own parts: its media, and ``text`` only when it has text of its own
    (the title it gets from its parent is shown, not embedded, on a page without text) or is a stretch of
    sound (its title is embedded, as for a segment with no media, so every encoder makes a vector of it)."""
    if not segment.media:
        return None
    own_text = segment.text.strip() or "audio" in segment.media
    parts = set(segment.media) | ({TEXT} if own_text else set())
    return join_modality(parts)


def _message(exc: XmodalError, name: str) -> str:
    text = str(exc)
    prefix = f"item {name!r}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _title_of(name: str) -> str:
    stem = Path(name).stem
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or stem


def split_file(
    path: str | Path,
    *,
    id: str | None = None,
    name: str | None = None,
    title: str = "",
    attributes: Mapping[str, Any] | None = None,
    options: SplitOptions | None = None,
    using: str | None = None,
) -> Iterator[Item | Rejection]:
    """The items of one file by the splitter of its suffix, or the one named ``using`` (a
    :class:`Rejection` when none takes it)."""
    path = Path(path)
    shown = name or str(path)
    chosen_name = using or splitter_name_for(path)
    if chosen_name is None:
        known = ", ".join(sorted(split_suffixes())) or "none"
        yield Rejection(shown, f"no splitter takes {path.suffix or 'files without an extension'} (known: {known})")
        return
    try:
        chosen = splitter(chosen_name)
    except XmodalError as exc:
        yield Rejection(shown, str(exc))
        return
    source = Source(id or path.name, shown, path=path, title=title, attributes=dict(attributes or {}))
    yield from split_items(source, chosen, options)


def split_bytes(
    data: bytes,
    filename: str,
    *,
    id: str | None = None,
    title: str = "",
    attributes: Mapping[str, Any] | None = None,
    options: SplitOptions | None = None,
) -> Iterator[Item | Rejection]:
    """The items of an uploaded file (``filename`` chooses the splitter by its suffix)."""
    chosen_name = splitter_name_for(filename)
    if chosen_name is None:
        known = ", ".join(sorted(split_suffixes())) or "none"
        yield Rejection(filename, f"no splitter takes {Path(filename).suffix or 'this file'} (known: {known})")
        return
    try:
        chosen = splitter(chosen_name)
    except XmodalError as exc:
        yield Rejection(filename, str(exc))
        return
    source = Source(id or filename, filename, data=data, title=title, attributes=dict(attributes or {}))
    yield from split_items(source, chosen, options)


register_splitter("text", "xmodal.splitters.text:TextSplitter", suffixes=(".txt", ".md", ".markdown", ".html", ".htm"))
register_splitter("pdf", "xmodal.splitters.pdf:PdfSplitter", suffixes=(".pdf",))
#: Images of pages: by name only (an image file is an image item unless SplitOptions.images_as_pages).
register_splitter("page-image", "xmodal.splitters.page_image:PageImageSplitter", suffixes=())
PAGE_IMAGE = "page-image"
register_splitter(
    "audio",
    "xmodal.av.splitter:AudioSplitter",
    suffixes=(".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac"),
)
register_splitter("video", "xmodal.av.splitter:VideoSplitter", suffixes=(".mp4", ".m4v", ".webm", ".mkv", ".mov"))

__all__ = [
    "CHUNK_CHARS",
    "MAX_PAGES",
    "OVERLAP_CHARS",
    "PAGE_IMAGE",
    "SPLITTERS",
    "SPLITTER_ATTRIBUTE",
    "Segment",
    "SegmentError",
    "Source",
    "Split",
    "SplitOptions",
    "Splitter",
    "register_splitter",
    "segment_id",
    "span_label",
    "split_bytes",
    "split_file",
    "split_items",
    "split_suffixes",
    "splitter",
    "splitter_name_for",
    "unregister_splitter",
]
