"""Safe image loading: every image that enters xmodal passes through :func:`decode_image`.

It refuses missing files, unknown or disallowed formats, corrupt or truncated data and
decompression bombs (checked from the header, before any pixel is decoded), each with an
:class:`~xmodal.errors.ImageError` naming the item and the fix.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .records import ImageSource

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
MAX_PIXELS = 40_000_000  # about 6300 × 6300; larger is refused as a possible decompression bomb
MAX_BYTES = 50 * 1024 * 1024


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


def decode_image(data: bytes, *, item: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode to an RGB image, or raise :class:`ImageError` saying why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
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
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            "image", f"not a readable image ({exc})", "give a JPEG, PNG, WebP, GIF, BMP or TIFF file", item=item
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("image", f"corrupt or truncated image data ({exc})", "re-export the image", item=item) from exc
    return to_rgb(image)


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
