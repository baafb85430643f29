"""Images of pages (scans, photos of documents; a multi-page TIFF) read as documents: one segment per page,
its text from OCR (:mod:`.ocr`), its image the page itself.

Image files are image items by default; this splitter takes them when asked (``xmodal add
--pages-from-images``, ``SplitOptions(images_as_pages=True)``). The image is checked as an image item's is
(:mod:`xmodal.imaging`: format, size, pixel count, corrupt or truncated data); a page whose OCR fails is
reported and the other frames kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from ..errors import ValidationError
from ..imaging import image_size, read_image_bytes, to_rgb
from ..records import MAX_TEXT_LENGTH, Span
from . import Segment, SegmentError, Source, Split, SplitOptions
from .ocr import OcrError, ocr_image
from .pdf import clean_text, page_jpeg

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")


class PageImageSplitter:
    """An image of one page (or a multi-page TIFF) → one segment per page with OCR text."""

    name = "page-image"
    suffixes = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".gif", ".bmp"})

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")

    def split(self, source: Source, options: SplitOptions) -> Split:
        data = read_image_bytes(source.data if source.data is not None else str(source.path), item=source.name)
        image_size(data, item=source.name)  # format and pixel limit checked before any decoding
        from PIL import Image

        try:
            image = Image.open(io.BytesIO(data))
            frames = int(getattr(image, "n_frames", 1))
        except (OSError, ValueError) as exc:
            raise ValidationError(
                "file", f"not a readable image ({exc})", "re-export the scan", item=source.name
            ) from None
        if frames > options.max_pages:
            raise ValidationError(
                "file",
                f"has {frames:,} pages, over the limit of {options.max_pages:,}",
                "split the file, or raise the limit (xmodal add --max-pages N, SplitOptions.max_pages)",
                item=source.name,
            )
        return Split(segments=_frames(image, frames, options), attributes={"pages": frames})


def _frames(image: Any, frames: int, options: SplitOptions) -> Iterator[Segment | SegmentError]:
    for index in range(frames):
        span = Span(page=index + 1)
        try:
            image.seek(index)
            page = to_rgb(image.copy())
        except (OSError, ValueError) as exc:
            yield SegmentError(span, f"could not be decoded ({exc})", "re-export the scan")
            continue
        text, source = "", "none"
        if options.ocr != "never":
            try:
                text, source = clean_text(ocr_image(page)), "ocr"
            except OcrError as exc:
                yield SegmentError(span, str(exc), "the other pages are kept; fix OCR and add the file again")
                continue
            options.report("ocr")
        options.report("pages")
        yield Segment(
            span,
            text=text[:MAX_TEXT_LENGTH],
            media={"image": page_jpeg(page)},
            attributes={"text_source": source if text else "none"},
        )
