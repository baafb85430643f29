"""The RivaGAN watermark (the ONNX files ``invisible-watermark`` ships, run with onnxruntime alone): a payload
embedded in a real photo is read back — under flips, quarter turns and colour inversion by trying their
inverses — with a binomial p-value corrected for the number of tries; an unmarked photo is not detected; a
missing or corrupt model is a ModelError (the guard then records "not checked")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from xmodal.guards.classifier import ModelError
from xmodal.guards.provenance import watermark as wm

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("imwatermark") is None, reason="invisible-watermark not installed (scripts/_env.sh)"
)
PAYLOAD = 0x5EED1234


def photo() -> Image.Image:
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.chelsea())  # 451 x 300, a real photo


def agree(probs: np.ndarray, payload: int) -> int:
    return int(((probs > 0.5) == wm.bits_of(payload).astype(bool)).sum())


def test_embedded_payload_is_detected_under_inverse_transforms() -> None:
    model = wm.shared(None)
    original = photo()
    marked = model.embed(original, PAYLOAD)
    assert marked.size == original.size
    diff = np.asarray(marked, float) - np.asarray(original, float)
    assert 10 * np.log10(255**2 / np.mean(diff**2)) > 38  # invisible: PSNR above 38 dB

    found = model.detect(marked, (PAYLOAD, wm.DEFAULT_PAYLOAD))
    assert found.detected and found.payload == PAYLOAD and found.transform == "identity"
    assert found.matches >= 30 and found.tries == 2 * len(wm.TRANSFORMS) == 14
    assert found.p_value == pytest.approx(min(1.0, wm.binomial_tail(found.matches) * 14)) and found.p_value < 1e-6
    assert found.to_dict()["payload"] == "5eed1234" and found.to_dict()["confidence"] > 0.999999

    flipped = model.read_bits(ImageOps.mirror(marked), ("identity", "hflip"))
    assert agree(flipped["hflip"], PAYLOAD) >= 30 > agree(flipped["identity"], PAYLOAD) + 4  # the inverse matters
    turned = model.read_bits(marked.rotate(90, expand=True), ("rot90",))
    assert agree(turned["rot90"], PAYLOAD) >= 30
    inverted = model.read_bits(ImageOps.invert(marked), ("invert",))
    assert agree(inverted["invert"], PAYLOAD) >= 30


def test_unmarked_photo_is_not_detected() -> None:
    found = wm.shared(None).detect(photo(), (PAYLOAD,))
    assert not found.detected and found.p_value > wm.ALPHA and found.matches < 26


def test_p_value_and_payload_arithmetic() -> None:
    assert wm.binomial_tail(32) == 2.0**-32 and wm.binomial_tail(0) == 1.0
    assert wm.binomial_tail(16) == pytest.approx(0.5 + 0.5 * 601080390 / 2**32)
    assert wm.payload_of(wm.bits_of(0xDEADBEEF)) == 0xDEADBEEF
    exact = {t: np.full(32, 0.1) for t in wm.TRANSFORMS}
    exact["rot270"] = wm.bits_of(0xDEADBEEF) * 0.8 + 0.1
    found = wm.match(exact, (0xDEADBEEF,))
    assert found.transform == "rot270" and found.matches == 32 and found.p_value == pytest.approx(7 * 2.0**-32)
    with pytest.raises(ValueError, match="32-bit"):
        wm.bits_of(2**32)


def test_missing_or_corrupt_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no watermark model file"):
        wm.RivaGan(tmp_path)
    for name in wm.FILES:
        (tmp_path / name).write_bytes(b"\x08\x07 not an onnx model")
    with pytest.raises(ModelError, match="cannot be loaded"):
        wm.RivaGan(tmp_path)


def test_too_small_image_is_refused() -> None:
    model = wm.shared(None)
    with pytest.raises(ValueError, match="too small"):
        model.embed(Image.new("RGB", (600, 40)), PAYLOAD)
    with pytest.raises(ValueError, match="too small"):
        model.detect(Image.new("RGB", (40, 600)))


def test_conv3d_rewrite_gives_the_shipped_models_outputs() -> None:
    ort = pytest.importorskip("onnxruntime")
    model = wm.shared(None)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    shipped = ort.InferenceSession(
        str(wm.bundled_models() / "rivagan_decoder.onnx"), options, providers=["CPUExecutionProvider"]
    )
    frame = np.random.default_rng(3).uniform(-1, 1, (1, 3, 1, 64, 80)).astype(np.float32)
    want = shipped.run(None, {"frame": frame})[0]
    got = model._decoder.run(None, {"frame": frame})[0]
    assert want.shape == got.shape == (1, 32)
    assert np.abs(want - got).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_strength_is_chosen_by_the_psnr_floor() -> None:
    model = wm.shared(None)
    original = photo()
    array = np.asarray(original, dtype=np.float32)
    residual = model.residual(original, PAYLOAD)
    gain = wm.strength(array, residual, 40.0)
    assert wm.MIN_GAIN <= gain <= wm.MAX_GAIN
    assert wm.psnr(array, wm._apply(array, residual, gain)) >= 40.0
    if gain < wm.MAX_GAIN:  # the largest such gain, to 1/64
        assert wm.psnr(array, wm._apply(array, residual, gain + 1 / 32)) < 40.0
    assert wm.strength(array, residual, 80.0) == wm.MIN_GAIN  # a floor no mark meets: the weakest
    assert wm.strength(array, residual, 10.0) == wm.MAX_GAIN
    marked = model.embed(original, PAYLOAD, psnr_floor=None)  # RivaGAN as trained: gain 1
    assert np.array_equal(np.asarray(marked), wm._apply(array, residual, 1.0))


def test_a_coded_message_survives_jpeg_50_in_a_real_photo_and_an_unmarked_one_is_not_detected() -> None:
    import io

    from xmodal.guards.provenance import watermark_code as wc

    rm2 = wc.code("rm2")
    message = 0xBEEF
    payload = rm2.encode(message)
    model = wm.shared(None)
    original = photo()
    marked = model.embed(original, payload)  # default strength: PSNR floor 40 dB
    assert wm.psnr(np.asarray(original), np.asarray(marked)) >= wm.PSNR_FLOOR
    buffer = io.BytesIO()
    marked.save(buffer, format="JPEG", quality=50)
    read = model.read_bits(Image.open(buffer), ("identity",))
    assert rm2.decode(wm.log_odds(read["identity"]))[0] == message
    assert wm.match(read, (payload,)).detected

    unmarked = model.read_bits(original, ("identity",))
    assert not wm.match(unmarked, (payload,)).detected
    assert rm2.decode(wm.log_odds(unmarked["identity"]))[0] != message
