"""Long text files (plain text, Markdown, HTML) split into overlapping chunks.

A chunk holds about ``SplitOptions.chunk_chars`` characters and repeats the last ``overlap_chars`` of
the one before, so a sentence cut at a boundary is whole in one of them; boundaries fall at a sentence
end when one is near, else between words. A chunk's span is its number (``page`` 1, 2, …; a text file
has no pages) and its attribute ``offset`` the character where it starts. HTML is reduced to its visible
text (scripts and styles dropped); its ``<title>``, or a Markdown file's first ``#`` heading, titles the
parent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import PurePath

from ..errors import ValidationError
from ..records import MAX_TEXT_LENGTH, Span
from . import Segment, Source, Split, SplitOptions

_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*\s+|\n\s*\n")
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"\x7fELF", b"RIFF", b"OggS", b"ID3")


class TextSplitter:
    """Plain text, Markdown and HTML files → overlapping chunks of text."""

    name = "text"
    suffixes = frozenset({".txt", ".md", ".markdown", ".html", ".htm"})

    def sniff(self, head: bytes) -> bool:
        return b"\x00" not in head and not head.startswith(_BINARY_MAGIC)

    def split(self, source: Source, options: SplitOptions) -> Split:
        raw = source.read(options.max_bytes)
        text = decode_text(raw, source.name)
        suffix = PurePath(source.name).suffix.lower()
        title = ""
        if suffix in (".html", ".htm"):
            title, text = html_text(text)
        elif suffix in (".md", ".markdown"):
            found = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
            title = found.group(1).strip() if found else ""
        text = normalise(text)
        if not text:
            raise ValidationError("file", "holds no text", "give a file with text in it", item=source.name)
        spans = chunk_spans(text, options.chunk_chars, options.overlap_chars)
        if len(spans) > options.max_pages:
            raise ValidationError(
                "file",
                f"would make {len(spans):,} chunks, over the limit of {options.max_pages:,}",
                "split the file, or raise the limit (--max-pages / SplitOptions.max_pages)",
                item=source.name,
            )
        return Split(
            segments=_segments(text, spans, options),
            title=title,
            attributes={"chunks": len(spans), "characters": len(text)},
        )


def _segments(text: str, spans: list[tuple[int, int]], options: SplitOptions) -> Iterator[Segment]:
    for number, (start, end) in enumerate(spans, 1):
        options.report("chunks")
        yield Segment(Span(page=number), text=text[start:end][:MAX_TEXT_LENGTH], attributes={"offset": start})


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 (with or without a byte-order mark) or UTF-16 with one; a :class:`ValidationError` otherwise."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "file",
            f"is not UTF-8 text (byte {exc.start:,} is not valid UTF-8)",
            "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            item=name,
        ) from None


def normalise(text: str) -> str:
    """Text with runs of spaces collapsed and at most one blank line between paragraphs."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def chunk_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` character ranges of about ``size`` characters, each starting ``overlap`` characters
    before the previous one ends (snapped to a word start); the last one ends at the end of ``text``."""
    size = max(size, 50)
    overlap = max(0, min(overlap, size // 2))
    spans: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            end = _boundary(text, start, end)
        spans.append((start, end))
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and not text[nxt - 1].isspace():  # start at a word
            nxt += 1
        start = nxt if nxt < end else end
        while start < n and text[start].isspace():
            start += 1
    return spans


def _boundary(text: str, start: int, end: int) -> int:
    """The best place to end a chunk at or before ``end``: a sentence end in its last third, else a space."""
    low = start + (end - start) * 2 // 3
    best = None
    for found in _SENTENCE_END.finditer(text, low, end):
        best = found.end()
    if best is not None:
        return best
    space = text.rfind(" ", low, end)
    newline = text.rfind("\n", low, end)
    cut = max(space, newline)
    return cut + 1 if cut > start else end


class _Visible(HTMLParser):
    """The visible text of an HTML page and its title."""

    BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> tuple[str, str]:
    """``(title, visible text)`` of an HTML document."""
    parser = _Visible()
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.title).split()), "".join(parser.parts)
