"""Exports: with ``[export_provenance]`` in the server config, thumbnails and image downloads carry the RivaGAN
watermark and a C2PA manifest signed with the configured key — the export validates, a tampered copy reads
"tampered", the watermark survives the manifest's loss; without it, exports go out unmarked. Bad settings are
a ConfigError naming the key."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.provenance_certs import ISSUER, make_chain
from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.errors import ConfigError

pytest.importorskip("c2pa")
pytest.importorskip("fastapi")
from xmodal.guards.provenance import manifests  # noqa: E402
from xmodal.guards.provenance import watermark as wm  # noqa: E402
from xmodal.guards.provenance.export import ExportSettings  # noqa: E402
from xmodal.serve import ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402


def test_settings_errors_name_the_key() -> None:
    assert not ExportSettings.parse({}).on and not ExportSettings.parse(None).on
    assert ExportSettings.parse({"watermark": True}).on
    with pytest.raises(ConfigError, match="unknown key"):
        ExportSettings.parse({"watermarks": True})
    with pytest.raises(ConfigError, match="both c2pa_cert"):
        ExportSettings.parse({"c2pa_cert": "/x.pem"})
    with pytest.raises(ConfigError, match="payload must be a 32-bit"):
        ExportSettings.parse({"payload": 2**40})
    with pytest.raises(ConfigError, match="export_provenance"):
        ServeConfig.from_dict({"export_provenance": {"watermark": "yes"}})


def test_exports_are_watermarked_and_signed(tmp_path: Path) -> None:
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("invisible-watermark not installed (scripts/_env.sh)")
    skimage_data = pytest.importorskip("skimage.data")
    Image.fromarray(skimage_data.chelsea()).save(tmp_path / "cat.png")
    chain = make_chain(tmp_path)
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("cat", title="Chelsea the cat", image=str(tmp_path / "cat.png"))])
        plain_config = ServeConfig(mcp=False, log_requests=False)
        with serve_in_thread(create_app(engine, plain_config)) as url:
            plain = httpx.get(f"{url}/items/cat/thumbnail").content
        assert manifests.read(plain).status == "none"  # off unless configured

        table = {"watermark": True, "c2pa_cert": str(chain.cert), "c2pa_key": str(chain.key)}
        config = ServeConfig.from_dict({"export_provenance": table, "mcp": False, "log_requests": False})
        with serve_in_thread(create_app(engine, config)) as url:
            # embedding the mark runs the watermark model (seconds at high load: httpx's 5 s default was too short)
            thumb = httpx.get(f"{url}/items/cat/thumbnail", timeout=60).content
            media = httpx.get(f"{url}/items/cat/media", timeout=60)
    reading = manifests.read(thumb)
    assert reading.status == "valid" and reading.issuer == ISSUER and reading.ai_generated is False
    assert reading.generator == "xmodal"
    read = wm.shared(None).read_bits(Image.open(io.BytesIO(thumb)), ("identity",))["identity"]
    assert int(((read > 0.5) == wm.bits_of(wm.DEFAULT_PAYLOAD).astype(bool)).sum()) >= 29

    tampered = bytearray(thumb)
    tampered[-200] ^= 0x55
    bad = manifests.read(bytes(tampered))
    assert bad.status == "invalid" and bad.tampered

    assert media.headers["content-type"] == "image/png"
    assert manifests.read(media.content).status == "valid"
    downloaded = Image.open(io.BytesIO(media.content))
    assert downloaded.size == (451, 300)
    diff = np.asarray(downloaded.convert("RGB"), float) - np.asarray(Image.open(tmp_path / "cat.png"), float)
    assert 0 < float(np.abs(diff).mean()) < 3  # watermarked, invisibly
