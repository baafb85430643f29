"""Provenance at ingest, end to end: C2PA manifests read and validated for each image item (and, with
``watermark_check``, the RivaGAN watermark tested), the reading shown by ``item_guard``, REST ``GET /items/{id}``,
the CLI's ``get`` and in search hits; ``ai_generated = "block"`` leaves AI-generated items out; a corrupt
manifest or a watermark model that cannot load is a logged "not checked" and nothing accepted is lost."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_guards_policy
from tests.provenance_certs import ISSUER, make_chain
from xmodal import Engine, Item
from xmodal.cli import main
from xmodal.encoders import HashingEncoder

pytest.importorskip("c2pa")
from xmodal.guards.provenance.manifests import ManifestSigner  # noqa: E402


def picture(seed: int, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray((rng.random((72, 96, 3)) * 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def build(path: Path, policy: str, files: dict[str, Path]) -> None:
    write_guards_policy(path, policy)
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(name, title=f"picture {name}", image=str(f)) for name, f in files.items()])
        engine.add([Item.create("note", title="picture note", text="a note without an image")])


def images(tmp_path: Path) -> dict[str, Path]:
    chain = make_chain(tmp_path)
    signer = ManifestSigner(chain.cert, chain.key)
    files = {
        "gen": signer.sign(picture(1), "image/png", title="gen.png", ai_generated=True),
        "shot": signer.sign(picture(2), "image/png", title="shot.png"),
        "plain": picture(3),
    }
    signed = signer.sign(picture(4, "JPEG"), "image/jpeg", title="broken.jpg")
    at = signed.index(b"jumb")
    broken = bytearray(signed)
    broken[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "big")  # a manifest box that claims 4 GB
    files["broken"] = bytes(broken)
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name}.{'jpg' if name == 'broken' else 'png'}"
        out[name].write_bytes(data)
    return out


def test_readings_shown_everywhere_and_ai_filter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("fastapi")
    with caplog.at_level(logging.WARNING, logger="xmodal.guards.provenance"):
        build(tmp_path / "idx", "", images(tmp_path))
    assert "item 'broken': C2PA not checked: the manifest cannot be read" in caplog.text
    assert (tmp_path / "idx" / "guards" / "provenance.json").exists()
    with Engine.open(tmp_path / "idx") as engine:  # readings reloaded from the saved state
        assert len(engine) == 5  # nothing accepted is lost
        gen = engine.item_guard("gen")
        assert gen is not None and gen["status"] == "flagged"
        c2pa = gen["provenance"]["c2pa"]
        assert c2pa["status"] == "valid" and c2pa["issuer"] == ISSUER and c2pa["ai_generated"] is True
        assert gen["provenance"]["ai_generated"] and gen["provenance"]["watermark"]["status"].startswith("off")
        assert [f["category"] for f in gen["findings"]] == ["ai_generated", "provenance"]
        shot = engine.item_guard("shot")
        assert shot is not None and shot["provenance"]["ai_generated"] is False
        assert [f["category"] for f in shot["findings"]] == ["provenance"]
        assert engine.item_guard("plain") is None and engine.item_guard("note") is None  # nothing to say
        broken = engine.item_guard("broken")
        assert broken is not None and broken["provenance"]["status"] == "not checked"
        hits = engine.search("picture", k=10).to_dict()["hits"]
        by_id = {h["id"]: h for h in hits}
        assert set(by_id) == {"gen", "shot", "plain", "broken", "note"}
        assert by_id["gen"]["guard"]["findings"][0]["category"] == "ai_generated"
        assert "trainedAlgorithmicMedia" in by_id["gen"]["guard"]["findings"][0]["evidence"]
        assert "guard" not in by_id["plain"]
        described = engine.info()["guards"]["guards"]["provenance"]
        assert described["images_read"] == 4 and described["ai_generated"] == 1 and described["with_manifest"] == 2

        from xmodal.serve import ServeConfig, create_app
        from xmodal.serve.testing import serve_in_thread

        with serve_in_thread(create_app(engine, ServeConfig(mcp=False, log_requests=False))) as url:
            item = httpx.get(f"{url}/items/gen").json()
            assert item["guard"]["provenance"]["c2pa"]["ai_generated"] is True
    capsys.readouterr()
    assert main(["--index", str(tmp_path / "idx"), "get", "gen", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["guard"]["provenance"]["c2pa"]["issuer"] == ISSUER

    # the filter: a deployment (or one API key) that blocks ai_generated never sees the generated image
    write_guards_policy(tmp_path / "idx", '[default]\nai_generated = "block"\n')
    with Engine.open(tmp_path / "idx") as engine:
        ids = {h for h, _ in engine.search("picture", k=10).hits}
        assert ids == {"shot", "plain", "broken", "note"}
        assert engine.guard_counts()[("ai_generated", "dropped_hit")] == 1


def test_watermark_at_ingest_and_a_model_that_cannot_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from xmodal.guards.provenance import watermark as wm

    photo = Image.fromarray(skimage_data.chelsea())
    try:
        wm.shared(None).embed(photo).save(tmp_path / "marked.png")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"watermark models not installed ({exc})")
    photo.save(tmp_path / "photo.png")
    files = {"marked": tmp_path / "marked.png", "photo": tmp_path / "photo.png"}
    build(tmp_path / "on", "[settings]\nwatermark_check = true\n", {"marked": files["marked"]})
    with Engine.open(tmp_path / "on") as engine:
        marked = engine.item_guard("marked")
        assert marked is not None and marked["provenance"]["watermark"]["detected"] is True
        assert marked["provenance"]["watermark"]["payload"] == f"{wm.DEFAULT_PAYLOAD:08x}"
        assert marked["provenance"]["watermark"]["p_value"] < 1e-6
        assert marked["findings"][0]["category"] == "provenance" and "watermark" in marked["findings"][0]["evidence"]

    policy = f'[settings]\nwatermark_check = true\nwatermark_models = "{tmp_path / "nowhere"}"\n'
    with caplog.at_level(logging.WARNING, logger="xmodal.guards.provenance"):
        build(tmp_path / "off", policy, files)
    assert "watermarks are not checked" in caplog.text
    with Engine.open(tmp_path / "off") as engine:
        assert len(engine) == 3
        status = engine.item_guard("marked")
        assert status is not None and status["provenance"]["status"] == "partly checked"
        assert status["provenance"]["watermark"]["status"].startswith("not checked: no watermark model file")


def test_policy_settings_are_checked() -> None:
    from xmodal.errors import ConfigError
    from xmodal.guards.policy import parse

    policy = parse({"settings": {"watermark_check": True, "watermark_payload": 0x1234}, "default": {}}, "p.toml")
    assert policy.watermark_check and policy.watermark_payload == 0x1234 and policy.default["ai_generated"] == "flag"
    with pytest.raises(ConfigError, match="watermark_payload: must be a 32-bit"):
        parse({"settings": {"watermark_payload": 2**33}}, "p.toml")
    with pytest.raises(ConfigError, match="watermark_check: must be true or false"):
        parse({"settings": {"watermark_check": "yes"}}, "p.toml")
    with pytest.raises(ConfigError, match="unknown action 'hide'"):
        parse({"default": {"ai_generated": "hide"}}, "p.toml")
