"""PDF files: one segment per page, with ``pypdfium2`` (BSD/Apache; the PDFium engine of Chromium).

Each page gives a segment whose text is the page's text layer, or, when the page has none (or is a scan:
an image over most of the page and little text), what OCR (:mod:`.ocr`, Debian's ``tesseract``) reads on
the page rendered at ``SplitOptions.dpi``; and whose ``image`` is the rendered page (JPEG, longer side at
most :data:`IMAGE_SIDE` pixels), which the engine encodes into the page-image vector and serves as the
page's thumbnail. A page with text and an image gets a text vector, an image vector and their combination.
The segment's attribute ``text_source`` says ``text-layer``, ``ocr`` or ``none``.

Refused whole, each with the fix: an encrypted (password-protected) PDF, a corrupt or truncated one, one
with no pages, and one over the page limit (``SplitOptions.max_pages``, ``xmodal add --max-pages``). A page
that fails (it cannot be rendered, or OCR fails) is reported with its number and the other pages are kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependency, ValidationError
from ..records import MAX_TEXT_LENGTH, Span
from . import Segment, SegmentError, Source, Split, SplitOptions
from .ocr import OcrError, ocr_image

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SIDE = 1_100  # the stored page image's longer side, in pixels
JPEG_QUALITY = 85
MIN_LETTERS = 20  # a text layer with fewer letters than this is no text layer
SCAN_COVER = 0.5  # an image over this share of the page, with little text, makes the page a scan
SCAN_LETTERS = 200
PLACEHOLDER_TITLES = frozenset({"untitled", "untitled document", "microsoft word - document1", "document1"})
PDF_FIX = "check that the file is complete (not truncated) and opens in a PDF reader, or export it again"


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError as exc:
        raise MissingDependency("pypdfium2", "documents") from exc
    return pypdfium2


class PdfSplitter:
    """PDF → one segment per page: text layer (or OCR) and the rendered page."""

    name = "pdf"
    suffixes = frozenset({".pdf"})

    def sniff(self, head: bytes) -> bool:
        return b"%PDF-" in head  # the header may follow a few bytes of junk

    def split(self, source: Source, options: SplitOptions) -> Split:
        pdfium = _pdfium()
        data = source.read(options.max_bytes)
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise ValidationError(
                    "file",
                    "is encrypted (password protected)",
                    "remove the password (e.g. qpdf --decrypt --password=PASSWORD in.pdf out.pdf) and add it again",
                    item=source.name,
                ) from None
            if "PDFium: Success" in str(exc):  # PDFium refuses a document whose page tree is empty so
                raise _no_pages(source) from None
            raise ValidationError("file", f"is not a readable PDF ({exc})", PDF_FIX, item=source.name) from None
        pages = len(pdf)
        if pages == 0:
            pdf.close()
            raise _no_pages(source)
        if pages > options.max_pages:
            pdf.close()
            raise ValidationError(
                "file",
                f"has {pages:,} pages, over the limit of {options.max_pages:,}",
                "split the PDF, or raise the limit (xmodal add --max-pages N, SplitOptions.max_pages)",
                item=source.name,
            )
        try:
            title = str(pdf.get_metadata_dict().get("Title") or "").strip()
        except pdfium.PdfiumError:
            title = ""
        if title.lower() in PLACEHOLDER_TITLES:  # a tool's default, not the document's: the file name titles it
            title = ""
        return Split(segments=_pages(pdf, pdfium, options), title=title, attributes={"pages": pages})


def _no_pages(source: Source) -> ValidationError:
    return ValidationError("file", "has no pages", "give a PDF with at least one page", item=source.name)


def _pages(pdf: Any, pdfium: Any, options: SplitOptions) -> Iterator[Segment | SegmentError]:
    try:
        for index in range(len(pdf)):
            number = index + 1
            span = Span(page=number)
            try:
                page = pdf[index]
                try:
                    text = page.get_textpage().get_text_bounded()
                    image = page.render(scale=options.dpi / 72).to_pil()
                    scan = _is_scan(page, pdfium, text)
                finally:
                    page.close()
            except pdfium.PdfiumError as exc:
                options.report("pages")
                yield SegmentError(span, f"could not be read ({exc})", PDF_FIX)
                continue
            source = "text-layer"
            if options.ocr == "always" or (options.ocr == "auto" and scan):
                try:
                    text = ocr_image(image)
                    source = "ocr"
                except OcrError as exc:
                    options.report("pages")
                    yield SegmentError(span, str(exc), "the other pages are kept; fix OCR and add the file again")
                    continue
                options.report("ocr")
            text = clean_text(text)
            options.report("pages")
            yield Segment(
                span,
                text=text[:MAX_TEXT_LENGTH],
                media={"image": page_jpeg(image)},
                attributes={"text_source": source if text else "none"},
            )
    finally:
        pdf.close()


def _letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


def _is_scan(page: Any, pdfium: Any, text: str) -> bool:
    """No usable text layer, or an image over most of the page with little text (a scanned page)."""
    letters = _letters(text)
    if letters < MIN_LETTERS:
        return True
    if letters >= SCAN_LETTERS:
        return False
    width, height = page.get_size()
    area = max(width * height, 1.0)
    for obj in page.get_objects(max_depth=2):
        if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE:
            left, bottom, right, top = obj.get_pos()
            if (right - left) * (top - bottom) >= SCAN_COVER * area:
                return True
    return False


def clean_text(text: str) -> str:
    """Page text with each line's spaces collapsed, hyphenated line ends joined and blank runs shortened."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if out and out[-1].endswith("-") and line[:1].islower() and out[-1][-2:-1].isalpha():
            out[-1] = out[-1][:-1] + line
        elif line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def page_jpeg(image: Image.Image, side: int = IMAGE_SIDE) -> bytes:
    """The page image as JPEG bytes, its longer side at most ``side`` pixels."""
    from PIL import Image as PILImage

    page = image.convert("RGB")
    scale = side / max(page.size)
    if scale < 1:
        page = page.resize(
            (max(1, round(page.width * scale)), max(1, round(page.height * scale))), PILImage.Resampling.LANCZOS
        )
    out = io.BytesIO()
    page.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
