"""PDF documents: one segment per page (text layer, rendered page image, OCR of a scanned page), found by
text with their page number; bad PDFs (encrypted, corrupt, zero pages, over the page limit, a lying
extension) are refused alone with the fix; an OCR failure loses only its page; deleting the document
deletes its pages. The PDFs are generated here with reportlab; OCR runs Debian's real tesseract."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2", reason="PDF pages need pypdfium2: pip install 'xmodal[documents]'")
pytest.importorskip("reportlab", reason="the test PDFs are typeset with reportlab: pip install 'xmodal[test]'")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.lib.utils import ImageReader  # noqa: E402
from reportlab.pdfgen import canvas  # noqa: E402

from xmodal import Engine, Query  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.ingest.catalog import add_catalogs  # noqa: E402
from xmodal.ingest.prepare import Rejection  # noqa: E402
from xmodal.records import Item, Span  # noqa: E402
from xmodal.splitters import SplitOptions, split_bytes, split_file  # noqa: E402
from xmodal.splitters.ocr import tesseract_path  # noqa: E402

NEEDS_TESSERACT = pytest.mark.skipif(
    tesseract_path() is None, reason="OCR needs the tesseract binary: apt-get install tesseract-ocr tesseract-ocr-eng"
)

PAGES = [
    ["The lighthouse keeper recorded the storm", "in a leather notebook every night."],
    ["Copper wires carried the signal across", "the valley to the old railway station."],
    ["A committee of beekeepers met every spring", "to compare the colour of their honey."],
]
SCANNED = ["GLACIER RETREAT REPORT", "The glacier retreated three metres", "during the warm summer."]


def scan_image(lines: list[str]) -> Image.Image:
    """A page of text as pixels (no text layer): large DejaVu type on white, as a scanner would give."""
    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("DejaVuSans.ttf", 44) if _has_dejavu() else ImageFont.load_default(44)
    for row, line in enumerate(lines):
        draw.text((120, 200 + row * 90), line, fill=0, font=font)
    return image


def _has_dejavu() -> bool:
    try:
        ImageFont.truetype("DejaVuSans.ttf", 10)
    except OSError:
        return False
    return True


def make_pdf(pages: list[list[str]], *, scanned: list[list[str]] = (), title: str = "", encrypt: str = "") -> bytes:  # type: ignore[assignment]
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, encrypt=encrypt or None)
    if title:
        pdf.setTitle(title)
    for lines in pages:
        pdf.setFont("Helvetica", 14)
        for row, line in enumerate(lines):
            pdf.drawString(72, 760 - row * 22, line)
        pdf.showPage()
    for lines in scanned:
        width, height = A4
        pdf.drawImage(ImageReader(scan_image(lines)), 0, 0, width=width, height=height)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def open_engine(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact", extensions=[])


@NEEDS_TESSERACT
def test_pdf_pages_are_segments_with_text_image_and_ocr(tmp_path: Path) -> None:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(make_pdf(PAGES, scanned=[SCANNED], title="Field notes"))
    with open_engine(tmp_path / "idx") as engine:
        report = add_catalogs(engine, [folder])
        assert report.rejected == []
        assert report.added == ["report.pdf"] + [f"report.pdf#p{n}" for n in range(1, 5)]
        parent = engine.get("report.pdf")
        assert parent.title == "Field notes" and parent.attributes["pages"] == 4 and parent.parent is None
        second = engine.get("report.pdf#p2")
        assert second.span == Span(page=2) and second.parent == "report.pdf"
        assert "Copper wires carried the signal" in second.text and second.attributes["text_source"] == "text-layer"
        assert set(engine.vectors("report.pdf#p2")) == {"text", "image", "combined"}
        scanned = engine.get("report.pdf#p4")
        assert scanned.attributes["text_source"] == "ocr"
        assert "glacier retreated three metres" in " ".join(scanned.text.split()).lower()
        # the page image is kept in the media store and decodes as a page-shaped image
        with Image.open(engine.media.path(str(scanned.media["image"]))) as page:
            assert page.height > page.width and max(page.size) <= 1100
        hit = engine.search(Query(text="beekeepers honey", k=3)).items[0]
        assert hit.id == "report.pdf#p3" and hit.span == Span(page=3)
        ocr_hit = engine.search(Query(text="glacier retreated warm summer", k=3)).items[0]
        assert ocr_hit.id == "report.pdf#p4"
        grouped = engine.search(Query(text="copper signal railway", k=5, group="parent")).items
        assert [h.id for h in grouped][:1] == ["report.pdf#p2"]
        assert len({h.parent or h.id for h in grouped}) == len(grouped)
        assert engine.delete(["report.pdf"]) == 1
        assert len(engine) == 0


def test_ocr_failure_on_a_page_keeps_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tesseract exits with an error (here: the ``false`` binary in its place): the scanned page is
    reported with its number and the fix; the text-layer pages are added."""
    monkeypatch.setenv("XMODAL_TESSERACT", "false")
    path = tmp_path / "mixed.pdf"
    path.write_bytes(make_pdf(PAGES[:2], scanned=[SCANNED]))
    with open_engine(tmp_path / "idx") as engine:
        report = add_catalogs(engine, [path])
        assert report.added == ["mixed.pdf", "mixed.pdf#p1", "mixed.pdf#p2"]
        (rejected,) = report.rejected
        assert rejected.where == f"{path} page 3"
        assert "OCR failed" in rejected.reason and "tesseract" in rejected.reason


def test_ocr_never_keeps_a_scanned_page_as_an_image(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([], scanned=[SCANNED]))
    found = list(split_file(path, options=SplitOptions(ocr="never")))
    parent, page = found
    assert isinstance(page, Item) and page.text == "" and page.attributes["text_source"] == "none"
    assert page.modality.value == "image" and isinstance(parent, Item) and parent.title == "scan"


def _zero_page_pdf() -> bytes:
    import pypdfium2

    out = io.BytesIO()
    pypdfium2.PdfDocument.new().save(out)
    return out.getvalue()


def test_bad_pdfs_are_refused_alone_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = make_pdf(PAGES[:1])
    (folder / "good.pdf").write_bytes(good)
    (folder / "secret.pdf").write_bytes(make_pdf(PAGES[:1], encrypt="hunter2"))
    (folder / "truncated.pdf").write_bytes(good[:300])
    (folder / "empty.pdf").write_bytes(_zero_page_pdf())
    (folder / "zero.pdf").write_bytes(b"")
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(buf, "PNG")
    (folder / "photo.pdf").write_bytes(buf.getvalue())  # the extension lies
    (folder / "long.pdf").write_bytes(make_pdf(PAGES * 2))
    with open_engine(tmp_path / "idx") as engine:
        report = add_catalogs(engine, [folder], split_options=SplitOptions(max_pages=5, ocr="never"))
        assert sorted(report.added) == ["good.pdf", "good.pdf#p1"]
        why = {Path(r.where).name: r.reason for r in report.rejected}
        assert set(why) == {"secret.pdf", "truncated.pdf", "empty.pdf", "zero.pdf", "photo.pdf", "long.pdf"}
        assert "encrypted" in why["secret.pdf"] and "qpdf --decrypt" in why["secret.pdf"]
        assert "not a readable PDF" in why["truncated.pdf"] and "truncated" in why["truncated.pdf"]
        assert "has no pages" in why["empty.pdf"]
        assert "it is empty" in why["zero.pdf"]
        assert "looks like a PNG image" in why["photo.pdf"] and "rename" in why["photo.pdf"]
        assert "6 pages, over the limit of 5" in why["long.pdf"] and "--max-pages" in why["long.pdf"]


def test_an_uploaded_pdf_splits_from_bytes() -> None:
    found = list(split_bytes(make_pdf(PAGES), "upload.pdf", id="doc-1", options=SplitOptions(ocr="never")))
    assert [i.id for i in found if isinstance(i, Item)] == ["doc-1", "doc-1#p1", "doc-1#p2", "doc-1#p3"]
    assert not [r for r in found if isinstance(r, Rejection)]


@NEEDS_TESSERACT
def test_images_of_pages_are_ocrd_when_asked(tmp_path: Path) -> None:
    """A multi-page TIFF of scans and a PNG scan become documents with --pages-from-images; without it
    they stay image items."""
    folder = tmp_path / "scans"
    folder.mkdir()
    first, second = scan_image(SCANNED), scan_image(["COPPER WIRE LEDGER", "Signals crossed the valley"])
    first.save(folder / "batch.tiff", save_all=True, append_images=[second], compression="tiff_lzw")
    first.save(folder / "single.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with open_engine(tmp_path / "idx") as engine:
        report = add_catalogs(engine, [folder], split_options=SplitOptions(images_as_pages=True))
        assert report.added == ["batch.tiff", "batch.tiff#p1", "batch.tiff#p2", "single.png", "single.png#p1"]
        (broken,) = report.rejected
        assert broken.where == str(folder / "broken.png") and "not a readable image" in broken.reason
        page = engine.get("batch.tiff#p2")
        assert page.span == Span(page=2) and page.attributes["text_source"] == "ocr"
        assert "signals crossed the valley" in " ".join(page.text.split()).lower()
        assert engine.get("batch.tiff").attributes["pages"] == 2
    records = list(split_file(folder / "single.png"))  # no splitter takes a .png by its suffix
    assert isinstance(records[0], Rejection) and "no splitter takes .png" in records[0].reason
