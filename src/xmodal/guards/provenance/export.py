"""Marking the images the service hands out (thumbnails, media downloads): an invisible watermark
(:mod:`.watermark`, the configured payload) and a signed C2PA manifest (:mod:`.manifests`, the configured
key and certificate chain). Both are off unless the server config has an ``[export_provenance]`` table::

    [export_provenance]
    watermark = true                      # embed the payload (default true once the table is given)
    payload = 0x786D6F64                  # 32-bit payload (default: "xmod")
    c2pa_cert = "/etc/xmodal/c2pa-chain.pem"   # PEM chain, leaf first (ES256/PS256...); with c2pa_key: sign
    c2pa_key = "/etc/xmodal/c2pa-key.pem"
    c2pa_alg = "es256"

The watermark goes in first (it changes pixels), the manifest last (it binds the bytes as sent). An image too
small to carry the watermark is only signed; one that cannot be decoded is handed out as stored.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ...errors import ConfigError
from ...imaging import decode_image
from ..classifier import ModelError
from . import watermark as wm
from .manifests import MIME, ManifestSigner

log = logging.getLogger(__name__)
KEYS = ("watermark", "payload", "c2pa_cert", "c2pa_key", "c2pa_alg", "watermark_models")
WHERE = "server setting export_provenance"


@dataclass(frozen=True)
class ExportSettings:
    watermark: bool = False
    payload: int = wm.DEFAULT_PAYLOAD
    c2pa_cert: str | None = None
    c2pa_key: str | None = None
    c2pa_alg: str = "es256"
    watermark_models: str | None = None

    @property
    def on(self) -> bool:
        return self.watermark or self.c2pa_cert is not None

    @classmethod
    def parse(cls, table: Any) -> ExportSettings:
        """The settings of the config's ``[export_provenance]`` table (empty: off); :class:`ConfigError` naming
        the key and the fix."""
        if not table:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigError(f"{WHERE} must be a table ([export_provenance] with {', '.join(KEYS)})")
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ConfigError(f"{WHERE}: unknown key(s) {unknown}; use {', '.join(KEYS)}")
        mark = table.get("watermark", True)
        if not isinstance(mark, bool):
            raise ConfigError(f"{WHERE}.watermark must be true or false")
        payload = table.get("payload", wm.DEFAULT_PAYLOAD)
        if isinstance(payload, bool) or not isinstance(payload, int) or not 0 < payload < 2**wm.BITS:
            raise ConfigError(f"{WHERE}.payload must be a 32-bit unsigned integer above 0 (e.g. 0x786D6F64)")
        cert, key = table.get("c2pa_cert"), table.get("c2pa_key")
        if (cert is None) != (key is None):
            raise ConfigError(f"{WHERE}: give both c2pa_cert (PEM chain, leaf first) and c2pa_key (PEM), or neither")
        for name in ("c2pa_cert", "c2pa_key", "c2pa_alg", "watermark_models"):
            value = table.get(name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(
                    f"{WHERE}.{name} must be a path string"
                    if name != "c2pa_alg"
                    else f"{WHERE}.c2pa_alg must be a string"
                )
        return cls(mark, payload, cert, key, str(table.get("c2pa_alg", "es256")), table.get("watermark_models"))


class Exporter:
    """Marks exported images under :class:`ExportSettings`; thread-safe."""

    def __init__(self, settings: ExportSettings) -> None:
        self.settings = settings
        self._model: wm.RivaGan | None = None
        self.status = "off"
        if settings.watermark:
            folder = Path(settings.watermark_models) if settings.watermark_models else None
            try:
                self._model = wm.shared(folder)
                self.status = "watermark"
            except ModelError as exc:  # exports still go out (signed when configured): said at start-up and here
                log.warning("exports are not watermarked (%s)", exc)
                self.status = f"watermark not available: {exc}"
        self._signer = (
            ManifestSigner(Path(settings.c2pa_cert), Path(settings.c2pa_key), settings.c2pa_alg)
            if settings.c2pa_cert and settings.c2pa_key
            else None
        )
        if self._signer is not None:
            self.status += "+c2pa"

    def image(
        self, image: Image.Image, fmt: str, *, title: str, ai_generated: bool = False, quality: int = 90
    ) -> bytes:
        """``image`` encoded as ``fmt`` (a PIL format name), watermarked and signed as configured."""
        payload: int | None = None
        if self._model is not None:
            try:
                image = self._model.embed(image, self.settings.payload)
                payload = self.settings.payload
            except ValueError as exc:  # too small to carry the bits: signed only
                log.info("export %r not watermarked: %s", title, exc)
        out = io.BytesIO()
        fmt = fmt if fmt in MIME else "PNG"
        if fmt == "JPEG":
            image.convert("RGB").save(out, format=fmt, quality=quality)
        else:
            image.save(out, format=fmt)
        data = out.getvalue()
        if self._signer is not None:
            data = self._signer.sign(data, MIME[fmt], title=title, ai_generated=ai_generated, payload=payload)
        return data

    def file(self, data: bytes, *, title: str, ai_generated: bool = False) -> tuple[bytes, str] | None:
        """A stored image file marked in its own format (JPEG at quality 95), with its MIME type; None when it
        cannot be decoded (the caller sends it as stored)."""
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or "PNG"
            image = decode_image(data, item=title)
        except Exception as exc:  # noqa: BLE001 - an undecodable file goes out as stored
            log.warning("export %r not marked: %s", title, exc)
            return None
        fmt = fmt if fmt in MIME else "PNG"
        return self.image(image, fmt, title=title, ai_generated=ai_generated, quality=95), MIME[fmt]

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "payload": f"{self.settings.payload:08x}" if self._model else None}


def exporter(table: Any) -> Exporter | None:
    """The exporter of a config's ``[export_provenance]`` table; None when off."""
    settings = ExportSettings.parse(table)
    return Exporter(settings) if settings.on else None
