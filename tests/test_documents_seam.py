"""The splitter seam: one file becomes a parent item and segment items (text files chunked with overlap);
a third-party splitter registers by suffix; a failing segment is reported and the others kept; an
extension that lies is refused; deleting the parent deletes its segments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xmodal import Engine, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import ValidationError
from xmodal.ingest.catalog import add_catalogs
from xmodal.ingest.prepare import Rejection
from xmodal.records import Item, Span
from xmodal.splitters import (
    SPLITTERS,
    Segment,
    SegmentError,
    Source,
    Split,
    SplitOptions,
    register_splitter,
    split_bytes,
    split_file,
    unregister_splitter,
)
from xmodal.splitters.text import chunk_spans, html_text

SENTENCES = [
    "The lighthouse keeper recorded the storm in a leather notebook.",
    "Copper wires carried the signal across the valley to the old station.",
    "A committee of beekeepers met every spring to compare their honey.",
    "The glacier retreated three metres during the unusually warm summer.",
    "Children built a raft from barrels and floated it down the canal.",
    "The violinist tuned her instrument while the audience found their seats.",
]


def long_text(repeat: int = 6) -> str:
    paragraphs = []
    for r in range(repeat):
        paragraphs.append(" ".join(f"{s} (part {r})" for s in SENTENCES))
    return "\n\n".join(paragraphs)


def test_chunks_overlap_and_cover_the_text() -> None:
    text = long_text()
    spans = chunk_spans(text, 400, 80)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert s2 < e1, "consecutive chunks overlap"
        assert e1 - s2 <= 80 + 40  # about the overlap asked for (snapped to a word)
        assert s2 > s1 and e2 > e1
        assert text[s2 - 1].isspace(), "a chunk starts at a word"
    assert all(e - s <= 400 for s, e in spans)
    # every sentence is whole in at least one chunk
    chunks = [text[s:e] for s, e in spans]
    for r in range(6):
        for sentence in SENTENCES:
            assert any(f"{sentence} (part {r})" in c for c in chunks), sentence


def test_text_markdown_and_html_files_become_segments(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text(long_text(), encoding="utf-8")
    (folder / "guide.md").write_text("# Field guide\n\n" + long_text(2), encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><title>Station log</title><style>p {color: red}</style><script>var x = 1;</script></head>"
        f"<body><h1>Log</h1><p>{SENTENCES[1]}</p><p>{SENTENCES[3]} &amp; more</p></body></html>",
        encoding="utf-8",
    )
    options = SplitOptions(chunk_chars=500, overlap_chars=100)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        report = add_catalogs(engine, [folder], split_options=options)
        assert report.rejected == []
        notes = engine.get("notes.txt")
        assert notes.parent is None and notes.attributes["splitter"] == "text" and notes.title == "notes"
        n = int(notes.attributes["chunks"])
        assert n >= 5
        pages = [engine.get(f"notes.txt#p{i}") for i in range(1, n + 1)]
        assert all(p.parent == "notes.txt" and p.span == Span(page=i) for i, p in enumerate(pages, 1))
        assert engine.get("guide.md").title == "Field guide"
        html = engine.get("page.html")
        assert html.title == "Station log"
        body = engine.get("page.html#p1").text
        assert SENTENCES[1] in body and "& more" in body and "var x" not in body and "color" not in body
        # a text query finds the chunk holding its sentence; grouped, one hit per document
        hit = engine.search(Query(text="beekeepers honey committee (part 4)", k=3)).items[0]
        assert hit.parent == "notes.txt" and "beekeepers" in hit.text and "(part 4)" in hit.text
        grouped = engine.search(Query(text="glacier retreated warm summer", k=10, group="parent")).items
        parents = [h.parent or h.id for h in grouped]
        assert len(parents) == len(set(parents))
        # adding the file again, shorter: its old chunks are gone, not left behind
        (folder / "guide.md").write_text("# Field guide\n\nOnly one short paragraph now.", encoding="utf-8")
        assert add_catalogs(engine, [folder / "guide.md"], split_options=options).added == ["guide.md", "guide.md#p1"]
        assert "guide.md#p2" not in engine and engine.get("guide.md#p1").text.endswith("paragraph now.")
        # deleting the parent deletes every segment
        before = len(engine)
        assert engine.delete(["notes.txt"]) == 1
        assert len(engine) == before - n - 1 and "notes.txt#p1" not in engine


def test_single_file_and_upload_bytes(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text(long_text(1), encoding="utf-8")
    items = list(split_file(path))
    assert isinstance(items[0], Item) and items[0].id == "one.txt"
    assert all(isinstance(i, Item) and i.parent == "one.txt" for i in items[1:])
    uploaded = list(split_bytes(path.read_bytes(), "one.txt", id="up"))
    assert [i.id for i in uploaded if isinstance(i, Item)] == ["up"] + [f"up#p{k}" for k in range(1, len(items))]


def test_bad_text_files_are_rejected_alone(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(SENTENCES[0], encoding="utf-8")
    (folder / "latin.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (folder / "empty.md").write_text("  \n\n ", encoding="utf-8")
    (folder / "lies.txt").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    (folder / "tool.exe").write_bytes(b"MZ")
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        report = add_catalogs(engine, [folder])
        assert "good.txt" in engine and "good.txt#p1" in engine
        reasons = {Path(r.where).name: r.reason for r in report.rejected}
        assert "not UTF-8" in reasons["latin.txt"] and "iconv" in reasons["latin.txt"]
        assert "no text" in reasons["empty.md"]
        assert "looks like a PDF" in reasons["lies.txt"] and "rename" in reasons["lies.txt"]
        assert "not an allowed image format, nor a document" in reasons["tool.exe"]
        assert ".pdf" in reasons["tool.exe"] or ".txt" in reasons["tool.exe"]


def test_chunk_limit_is_named(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(long_text(20), encoding="utf-8")
    found = list(split_file(path, options=SplitOptions(chunk_chars=200, overlap_chars=20, max_pages=5)))
    assert len(found) == 1 and isinstance(found[0], Rejection)
    assert "over the limit of 5" in found[0].reason and "max-pages" in found[0].reason


class BeepSplitter:
    """A third-party splitter: ``.beep`` files of lines ``start end words``; a line ``fail`` fails."""

    name = "beep"
    suffixes = frozenset({".beep"})

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"BEEP")

    def split(self, source: Source, options: SplitOptions) -> Split:
        lines = source.read(options.max_bytes).decode().splitlines()[1:]
        if not lines:
            raise ValidationError("file", "has no windows", "record something", item=source.name)
        return Split(segments=self._windows(lines), title="beeps", attributes={"windows": len(lines)})

    def _windows(self, lines: list[str]) -> Iterator[Segment | SegmentError]:
        for line in lines:
            start, end, *words = line.split()
            span = Span(start=float(start), end=float(end))
            if words == ["fail"]:
                yield SegmentError(span, "could not decode this window", "re-encode the file")
            else:
                yield Segment(span, text=" ".join(words))


def test_a_registered_splitter_streams_segments_and_keeps_the_others(tmp_path: Path) -> None:
    register_splitter("beep", BeepSplitter, suffixes={".beep"})
    try:
        path = tmp_path / "talk.beep"
        path.write_text("BEEP\n0 10 whales breaching\n10 20 fail\n20 31.5 harbour seals\n", encoding="utf-8")
        with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
            report = add_catalogs(engine, [path])
            assert report.added == ["talk.beep", "talk.beep#t0", "talk.beep#t20"]
            (rejected,) = report.rejected
            assert rejected.where == f"{path} 0:10–0:20" and "re-encode" in rejected.reason
            seal = engine.get("talk.beep#t20")
            assert seal.span == Span(start=20.0, end=31.5) and seal.title == "beeps — 0:20–0:31"
            assert engine.get("talk.beep").attributes["windows"] == 3
        (bad,) = list(split_bytes(b"BEEP\n", "x.beep"))
        assert isinstance(bad, Rejection) and bad.where == "x.beep" and "has no windows" in bad.reason
    finally:
        unregister_splitter("beep")
    assert "beep" not in SPLITTERS
    (gone,) = list(split_bytes(b"BEEP\n0 1 a\n", "x.beep"))
    assert isinstance(gone, Rejection) and "no splitter takes .beep" in gone.reason


def test_html_text_drops_scripts() -> None:
    title, text = html_text("<title>T</title><script>alert(1)</script><p>a&lt;b</p>")
    assert title == "T" and "alert" not in text and "a<b" in text


@pytest.mark.parametrize("name", ["x.zip", "noext"])
def test_unknown_suffix_is_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"data")
    (found,) = list(split_file(path))
    assert isinstance(found, Rejection) and "no splitter takes" in found.reason and ".txt" in found.reason
