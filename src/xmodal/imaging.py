"""Safe image loading: every image that enters xmodal passes through :func:`decode_image`.

It refuses missing files, unknown or disallowed formats, corrupt or truncated data and
decompression bombs (checked from the header, before any pixel is decoded), each with an
:class:`~xmodal.errors.ImageError` naming the item and the fix.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .records import ImageSource

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
MAX_PIXELS = 40_000_000  # about 6300 × 6300; larger is refused as a possible decompression bomb
MAX_BYTES = 50 * 1024 * 1024
#: The shorter side an image is decoded down to for encoding (the bundled encoder needs 256: a 224 crop of
#: 87.5%; twice that leaves room for encoders that read 384 or 448 pixels).
DECODE_SIDE = 512


def read_image_bytes(source: ImageSource, base_dir: Path | None = None, *, item: str | None = None) -> bytes:
    """The raw bytes of an image given as bytes or a path (relative paths resolve against ``base_dir``)."""
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ImageError(
                "image", f"file not found: {path}", "fix the path (relative to the catalog file)", item=item
            )
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(
                "image", f"{path} is larger than {MAX_BYTES >> 20} MiB", "resize or recompress it", item=item
            )
        data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise ImageError("image", f"larger than {MAX_BYTES >> 20} MiB", "resize or recompress it", item=item)
    if not data:
        raise ImageError("image", "is empty", "give a real image file", item=item)
    return data


def image_size(data: bytes, *, item: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Width and height read from the header, format and pixel limit checked, without decoding a pixel."""
    with _readable(item):
        size: tuple[int, int] = _open(data, item, max_pixels).size
    return size


def decode_image(
    data: bytes, *, item: str | None = None, max_pixels: int = MAX_PIXELS, min_side: int | None = None
) -> Image.Image:
    """Decode to an RGB image, or raise :class:`ImageError` saying why not.

    With ``min_side``, an image whose shorter side is at least twice that is decoded smaller, by a whole
    factor that keeps the shorter side at ``min_side`` or more: a JPEG in draft mode (the decoder scales
    by 1/2, 1/4 or 1/8 and never builds the full-size picture), other formats reduced (box average) right
    after decoding, so every later step (colour conversion, the encoder's resize) works on the small copy.
    """
    with _readable(item):
        image = _open(data, item, max_pixels)
        factor = _factor(image.size, min_side)
        if factor >= 2 and image.format == "JPEG":
            image.draft("RGB", (image.width // factor, image.height // factor))
        image.load()
        factor = _factor(image.size, min_side)
        if factor >= 2:
            if image.mode not in ("RGB", "L"):
                image = to_rgb(image)  # transparency onto white before averaging pixels
            image = image.reduce(factor)
    return to_rgb(image)


def _factor(size: tuple[int, int], min_side: int | None) -> int:
    """The whole reduction factor that keeps the shorter side at ``min_side`` or more (1: none)."""
    return min(size) // min_side if min_side else 1


def _open(data: bytes, item: str | None, max_pixels: int) -> Image.Image:
    """The image with its header read and checked (format, pixel count); no pixel decoded yet."""
    image = Image.open(io.BytesIO(data))
    fmt = image.format or "unknown"
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(
            "image",
            f"format {fmt} is not allowed",
            f"convert it to one of {', '.join(sorted(ALLOWED_FORMATS))}",
            item=item,
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            "image",
            f"{width}×{height} pixels exceeds the limit of {max_pixels:,} (decompression bomb?)",
            "downscale the image",
            item=item,
        )
    return image


@contextmanager
def _readable(item: str | None) -> Iterator[None]:
    """Turn Pillow's failures (unreadable, bomb, corrupt, truncated) into an :class:`ImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            "image", f"not a readable image ({exc})", "give a JPEG, PNG, WebP, GIF, BMP or TIFF file", item=item
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("image", f"corrupt or truncated image data ({exc})", "re-export the image", item=item) from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparent pixels on white (clip-art and logos are drawn for a light page)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))  # alpha blend onto white, in one C pass
        return out
    return image.convert("RGB")


def load_image(source: ImageSource, base_dir: Path | None = None, *, item: str | None = None) -> Image.Image:
    """Read and decode an image from a path or bytes."""
    return decode_image(read_image_bytes(source, base_dir, item=item), item=item)
