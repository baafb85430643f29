"""OCR of a page image with Debian's ``tesseract`` binary (``apt-get install tesseract-ocr tesseract-ocr-eng``).

The image goes to ``tesseract - -`` as PNG on standard input and the text comes back on standard output;
one tesseract process per page, limited to one thread (``OMP_THREAD_LIMIT=1``) so that pages OCR'd side
by side do not fight over cores. Every failure is an :class:`OcrError` saying what to do.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from ..errors import XmodalError

if TYPE_CHECKING:
    from PIL import Image

TESSERACT = "tesseract"
TIMEOUT_S = 180.0  # one page
INSTALL = "install it: apt-get install tesseract-ocr tesseract-ocr-eng"


class OcrError(XmodalError):
    """OCR of one page failed: ``problem`` and ``fix``."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"OCR failed: {problem} ({fix})")


def tesseract_path() -> str | None:
    """Where the ``tesseract`` binary is (``None``: not installed)."""
    return shutil.which(os.environ.get("XMODAL_TESSERACT", TESSERACT))


def ocr_image(image: Image.Image, *, lang: str = "eng", timeout: float = TIMEOUT_S, psm: int = 3) -> str:
    """The text tesseract reads on ``image`` (an :class:`OcrError` when it cannot)."""
    binary = tesseract_path()
    if binary is None:
        raise OcrError("the tesseract binary is not installed", INSTALL)
    png = io.BytesIO()
    image.convert("L").save(png, "PNG")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            [binary, "-", "-", "-l", lang, "--psm", str(psm)],
            input=png.getvalue(),
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OcrError(f"tesseract took over {timeout:g} s", "render the page at a lower resolution (dpi)") from None
    except OSError as exc:
        raise OcrError(f"could not run tesseract ({exc.strerror or exc})", INSTALL) from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {done.returncode}"
        fix = f"install the language data: apt-get install tesseract-ocr-{lang}" if "language" in detail else INSTALL
        raise OcrError(f"tesseract failed: {detail[:300]}", fix)
    return done.stdout.decode("utf-8", "replace")
