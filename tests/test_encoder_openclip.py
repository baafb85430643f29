"""The ``open_clip`` backend on a tiny architecture registered through open_clip's model-config API, with random
weights saved locally. Skipped where open_clip does not import: it imports ``torchvision.transforms`` at import
time, and the only torchvision for torch 2.13.0 in this project's registry (0.28.0) is a CUDA 13.0 build whose
``_C.so`` needs ``libtorch_cuda.so``, which the CPU torch wheel lacks, so ``import torchvision`` fails
(``operator torchvision::nms does not exist``). docs/benchmarks.md, "open_clip on these machines", says how
these tests were run anyway."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmodal.cli import main
from xmodal.encoders import Content, create_encoder
from xmodal.errors import ConfigError

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

ARCH = "xmodal-tiny-clip"
TEXTS = ["a red running shoe", "a blue teapot", "green garden hose"]
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("openclip")
    config = folder / f"{ARCH}.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny.pt"
    torch.save(open_clip.create_model(ARCH).state_dict(), checkpoint)
    return config, checkpoint


def test_vectors_equal_the_librarys(tiny: tuple[Path, Path]) -> None:
    config, checkpoint = tiny
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(checkpoint))
    tokenizer = open_clip.get_tokenizer(ARCH)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    with torch.no_grad():
        want_text = model.eval().encode_text(tokenizer(TEXTS)).numpy()
        want_image = model.encode_image(preprocess(image).unsqueeze(0)).numpy()
    want_text /= np.linalg.norm(want_text, axis=1, keepdims=True)
    want_image /= np.linalg.norm(want_image, axis=1, keepdims=True)
    enc = create_encoder("open_clip", model=ARCH, checkpoint=str(checkpoint), model_config=str(config), device="cpu")
    text = enc.encode_documents([Content(text=t) for t in TEXTS])
    got_image = enc.encode_documents([Content(image=image)])
    assert enc.dim == 16 and np.min(np.sum(text * want_text, axis=1)) >= 0.999
    assert float(got_image[0] @ want_image[0]) >= 0.999


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (30 + 3 * i, 44, 3), dtype=np.uint8)) for i in range(n)]


def test_batch_size_device_shapes_and_normalisation(tiny: tuple[Path, Path]) -> None:
    config, checkpoint = tiny
    options = {"model": ARCH, "checkpoint": str(checkpoint), "model_config": str(config)}
    whole = create_encoder("open_clip", **options, device="auto")
    assert whole.device == ("cuda" if torch.cuda.is_available() else "cpu")  # type: ignore[attr-defined]
    assert whole.dtype == (torch.float16 if torch.cuda.is_available() else torch.float32)  # type: ignore[attr-defined]
    small = create_encoder("open_clip", **options, device="cpu", batch_size=2)
    calls = {"text": 0, "image": 0}
    model = small.model  # type: ignore[attr-defined]
    encode_text, encode_image = model.encode_text, model.encode_image

    def count_text(tokens: object) -> object:
        calls["text"] += 1
        return encode_text(tokens)

    def count_image(pixels: object) -> object:
        calls["image"] += 1
        return encode_image(pixels)

    model.encode_text, model.encode_image = count_text, count_image
    texts = [*TEXTS, "an oak table", "a wooden chair"]
    images = _images(5)
    text = small.encode_documents([Content(text=t) for t in texts])
    image = small.encode_queries([Content(image=im) for im in images])
    assert calls == {"text": 3, "image": 3}  # 5 inputs in batches of at most 2
    assert text.shape == (5, 16) and image.shape == (5, 16) and text.dtype == np.float32
    assert np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(image, axis=1), 1.0, atol=1e-5)
    if not torch.cuda.is_available():
        cpu_text = whole.encode_documents([Content(text=t) for t in texts])
        assert np.min(np.sum(text * cpu_text, axis=1)) >= 0.9999  # batching changes nothing
        with pytest.raises(ConfigError, match="no CUDA GPU here; use --encoder-option device=cpu"):
            create_encoder("open_clip", **options, device="cuda")
    cut = create_encoder("open_clip", **options, dim=8).encode_documents([Content(text=TEXTS[0])])[0]
    assert cut.shape == (8,) and float(cut @ (text[0, :8] / np.linalg.norm(text[0, :8]))) >= 0.999
    with pytest.raises(ConfigError, match="batch_size must be a positive int"):
        create_encoder("open_clip", **options, batch_size=0)


def test_cli_init_add_search_end_to_end(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint = tiny
    for i, im in enumerate(_images(3)):
        im.save(tmp_path / f"im{i}.png")
    catalog = tmp_path / "catalog.jsonl"
    rows = [{"id": f"p{i}", "text": t} for i, t in enumerate(TEXTS)] + [
        {"id": f"im{i}", "image": f"im{i}.png"} for i in range(3)
    ]
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows))
    index = str(tmp_path / "index")
    options = [f"model={ARCH}", f"checkpoint={checkpoint}", f"model_config={config}", "batch_size=2"]
    init = ["--index", index, "init", "--encoder", "open_clip"]
    assert main([*init, *(arg for option in options for arg in ("--encoder-option", option))]) == 0
    assert main(["--index", index, "add", str(catalog)]) == 0
    capsys.readouterr()
    assert main(["--index", index, "search", TEXTS[1], "--mode", "dense", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "p1"
    assert main(["--index", index, "search", "--image", str(tmp_path / "im2.png"), "--mode", "dense", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "im2"
    assert main(["--index", index, "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dim"] == 16 and info["encoder"]["name"] == "open_clip" and info["items"] == 6
    assert info["encoder"]["checkpoint"] == str(checkpoint) and "batch_size" not in info["encoder"]


def test_missing_weights_and_bad_settings_name_the_fix(tiny: tuple[Path, Path]) -> None:
    config, checkpoint = tiny
    with pytest.raises(ConfigError, match="--encoder-option checkpoint=.*download it once"):
        create_encoder("open_clip", model=ARCH, pretrained="laion400m_e32", model_config=str(config))
    with pytest.raises(ConfigError, match="unknown architecture 'No-Such-ViT'"):
        create_encoder("open_clip", model="No-Such-ViT", pretrained="x")
    with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 16"):
        create_encoder("open_clip", model=ARCH, checkpoint=str(checkpoint), model_config=str(config), dim=32)
