"""C2PA (``c2pa-python``, offline): a signed image validates and names its signer, trust anchors make it
"trusted", an AI-generation claim is read, a tampered image reads "invalid" + tampered, and a corrupt or
hostile manifest gives a "not checked" reading instead of an error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.provenance_certs import ISSUER, make_chain
from xmodal.errors import ConfigError

pytest.importorskip("c2pa")
from xmodal.guards.provenance import manifests  # noqa: E402
from xmodal.guards.provenance.manifests import ManifestSigner  # noqa: E402


def picture(fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(7)
    image = Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def test_signed_image_validates_and_tamper_is_reported(tmp_path: Path) -> None:
    chain = make_chain(tmp_path)
    signer = ManifestSigner(chain.cert, chain.key)
    signed = signer.sign(picture(), "image/jpeg", title="export.jpg", payload=0x786D6F64)
    reading = manifests.read(signed)
    assert reading.status == "valid" and reading.issuer == ISSUER and reading.common_name == "xmodal signer"
    assert reading.ai_generated is False and not reading.tampered
    assert reading.failures == ("signingCredential.untrusted",)  # sound signature, signer on no trust list
    trusted = manifests.read(signed, trust_anchors=chain.anchors.read_text())
    assert trusted.status == "trusted" and not trusted.failures
    assert Image.open(io.BytesIO(signed)).size == (128, 96)  # still the picture

    tampered = bytearray(signed)
    tampered[-300] ^= 0xFF  # one byte of the picture data, after the manifest
    bad = manifests.read(bytes(tampered))
    assert bad.status == "invalid" and bad.tampered and "assertion.dataHash.mismatch" in bad.failures
    assert bad.to_dict()["tampered"] is True


def test_ai_generation_claim_in_png(tmp_path: Path) -> None:
    chain = make_chain(tmp_path)
    signed = ManifestSigner(chain.cert, chain.key).sign(picture("PNG"), "image/png", title="gen.png", ai_generated=True)
    reading = manifests.read(signed)
    assert reading.status == "valid" and reading.ai_generated is True
    assert reading.source_types == (manifests.IPTC + "trainedAlgorithmicMedia",)
    assert manifests.read(picture("PNG")).status == "none"  # no manifest at all
    assert manifests.read(b"not an image").status.startswith(("none", "not checked"))


def test_corrupt_and_hostile_manifests_read_as_not_checked(tmp_path: Path) -> None:
    chain = make_chain(tmp_path)
    signed = ManifestSigner(chain.cert, chain.key).sign(picture(), "image/jpeg", title="x.jpg")
    at = signed.index(b"jumb")
    garbage = bytearray(signed)
    garbage[at + 40 : at + 400] = bytes(np.random.default_rng(1).integers(0, 256, 360, dtype=np.uint8))
    hostile = bytearray(signed)
    hostile[at + 4 : at + 8] = (0xFFFFFFF0).to_bytes(4, "big")  # its description box claims 4 GB
    for data in (bytes(garbage), bytes(hostile), signed[: at + 64]):
        reading = manifests.read(data)  # never raises
        assert reading.status.startswith("not checked: the manifest cannot be read"), reading
        assert reading.to_dict() == {"status": reading.status} and not reading.ai_generated


def test_signer_refuses_bad_key_and_algorithm(tmp_path: Path) -> None:
    chain = make_chain(tmp_path)
    (tmp_path / "bad.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="c2pa_cert/c2pa_key"):
        ManifestSigner(chain.cert, tmp_path / "bad.pem").sign(picture(), "image/jpeg", title="x")
    with pytest.raises(ConfigError, match="c2pa_alg"):
        ManifestSigner(chain.cert, chain.key, alg="md5")
    with pytest.raises(ConfigError, match="cannot read"):
        ManifestSigner(tmp_path / "missing.pem", chain.key)
