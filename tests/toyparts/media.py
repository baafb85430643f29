"""A toy medium from outside the package: ``glyphs``, a small JSON file of runes, and an encoder of it.

A glyph file is ``{"glyphs": "ᚠᚢᚦ..."}``; the loader checks it (size, JSON, known runes), reads the runes as
Latin letters and keeps the file in the index's media store. :class:`GlyphEncoder` makes a ``glyphs`` vector
kind from the medium (letter counts, like :class:`tests.toyparts.encoder.LetterEncoder`), a ``text`` kind from
the text, and ``combined`` from both. Both are named by dotted path, never registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmodal.encoders import BaseEncoder, Purpose
from xmodal.encoders.base import Vectors
from xmodal.errors import ValidationError
from xmodal.media_loaders import LoadedMedia, MediaRef

from .encoder import letter_counts

NAME = "tests.toyparts.media:Glyphs"
ENCODER = "tests.toyparts.media:GlyphEncoder"
RUNES = dict(zip("ᚨᛒᚲᛞᛖᚠᚷᚺᛁᛃᚴᛚᛗᚾᛟᛈᛩᚱᛊᛏᚢᚡᚹᛪᛦᛉ", "abcdefghijklmnopqrstuvwxyz", strict=True))


def runes(letters: str) -> str:
    """The runes of Latin letters (for writing glyph files)."""
    back = {v: k for k, v in RUNES.items()}
    return "".join(back[c] for c in letters)


def glyph_file(letters: str) -> bytes:
    return json.dumps({"glyphs": runes(letters)}, ensure_ascii=False).encode()


class Glyphs:
    """The ``glyphs`` medium: a JSON file of runes, read as Latin letters."""

    name = NAME
    max_bytes = 4096

    def load(self, ref: MediaRef, base_dir: Path | None = None, *, item: str | None = None) -> LoadedMedia:
        field = f"media.{NAME}"
        if isinstance(ref, bytes):
            data = ref
        else:
            path = Path(ref) if Path(ref).is_absolute() or base_dir is None else base_dir / ref
            if not path.is_file():
                raise ValidationError(field, f"file not found: {path}", "fix the path", item=item)
            data = path.read_bytes()
        if len(data) > self.max_bytes:
            raise ValidationError(field, f"larger than {self.max_bytes} bytes", "split the glyph file", item=item)
        try:
            text = json.loads(data.decode("utf-8"))["glyphs"]
            letters = "".join(RUNES[c] for c in text)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(field, f"not a glyph file ({exc!r})", 'write {"glyphs": "ᚠᚢᚦ"}', item=item) from None
        return LoadedMedia(letters, data, ".glyphs")


class GlyphEncoder(BaseEncoder):
    """Letter counts of the text and of the glyphs, in one 26-d space."""

    name = ENCODER
    native_dim = 26
    modalities = frozenset({"text", NAME})
    vector_kinds = {"text": ("text",), "glyphs": (NAME,), "combined": ("text", NAME)}

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        return letter_counts(texts)

    def _encode_media(self, name: str, contents: list[Any], purpose: Purpose) -> Vectors:
        if name == NAME:
            return letter_counts([str(c) for c in contents])
        return super()._encode_media(name, contents, purpose)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}
