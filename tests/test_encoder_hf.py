"""The ``hf`` backend on a tiny ``transformers`` CLIPConfig model saved with ``save_pretrained`` (random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tiny_models import tiny_clip
from xmodal import Engine, Item
from xmodal.encoders import Content, create_encoder
from xmodal.errors import ConfigError

pytest.importorskip("transformers")

TEXTS = ["a red running shoe", "a blue teapot", "green garden hose"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(3)]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("hf") / "tiny-clip")


def _library(clip_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(clip_dir).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(clip_dir), AutoImageProcessor.from_pretrained(clip_dir)
    with torch.no_grad():
        text = model.get_text_features(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
        image = model.get_image_features(**processor(_images(), return_tensors="pt"))
    out = [t if isinstance(t, torch.Tensor) else t.pooler_output for t in (text, image)]
    return tuple(o.numpy() / np.linalg.norm(o.numpy(), axis=1, keepdims=True) for o in out)  # type: ignore[return-value]


def test_text_and_image_vectors_equal_the_librarys(clip_dir: Path) -> None:
    want_text, want_image = _library(clip_dir)
    enc = create_encoder("hf", model=str(clip_dir), device="cpu", batch_size=2)
    text = enc.encode_documents([Content(text=t) for t in TEXTS])
    image = enc.encode_documents([Content(image=im) for im in _images()])
    assert enc.dim == 24 and text.shape == (3, 24) and image.shape == (3, 24)
    assert np.min(np.sum(text * want_text, axis=1)) >= 0.999
    assert np.min(np.sum(image * want_image, axis=1)) >= 0.999
    both = enc.encode_queries([Content(text=TEXTS[0], image=_images()[0])])[0]
    mean = (want_text[0] + want_image[0]) / np.linalg.norm(want_text[0] + want_image[0])
    assert float(both @ mean) >= 0.999
    cut = create_encoder("hf", model=str(clip_dir), dim=12).encode_documents([Content(text=TEXTS[1])])[0]
    assert float(cut @ (want_text[1, :12] / np.linalg.norm(want_text[1, :12]))) >= 0.999


def test_an_image_index_finds_its_image(clip_dir: Path, tmp_path: Path) -> None:
    for i, im in enumerate(_images()):
        im.save(tmp_path / f"im{i}.png")
    items = [Item.create(f"im{i}", image=f"im{i}.png") for i in range(3)]
    with Engine.open(tmp_path / "idx", encoder="hf", encoder_options={"model": str(clip_dir)}) as engine:
        assert not engine.add(items, base_dir=tmp_path).rejected
        from xmodal import Query

        hits = engine.search(Query(image=str(tmp_path / "im2.png"), mode="dense", k=1)).hits
        assert hits.ids[0] == "im2"
        assert engine.info()["dim"] == 24


def test_bad_settings_name_the_fix(clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 24.*--dim 24"):
        create_encoder("hf", model=str(clip_dir), dim=25)
    with pytest.raises(
        ConfigError, match="no weights for model 'openai/clip-nowhere'.*--encoder-option model=.*download"
    ):
        create_encoder("hf", model="openai/clip-nowhere")
    with Engine.open(tmp_path / "idx", encoder="hf", encoder_options={"model": str(clip_dir)}, dim=16):
        pass
    with pytest.raises(ConfigError, match="created with dim 16, not 24"):
        Engine.open(tmp_path / "idx", dim=24)
