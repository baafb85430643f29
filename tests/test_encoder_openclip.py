"""The ``open_clip`` backend on a tiny architecture registered through open_clip's model-config API, with random
weights saved locally. Skipped where open_clip does not import (it needs a torchvision built for the installed
torch; this project's CPU machines have none)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def test_missing_weights_and_bad_settings_name_the_fix(tiny: tuple[Path, Path]) -> None:
    config, checkpoint = tiny
    with pytest.raises(ConfigError, match="--encoder-option checkpoint=.*download it once"):
        create_encoder("open_clip", model=ARCH, pretrained="laion400m_e32", model_config=str(config))
    with pytest.raises(ConfigError, match="unknown architecture 'No-Such-ViT'"):
        create_encoder("open_clip", model="No-Such-ViT", pretrained="x")
    with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 16"):
        create_encoder("open_clip", model=ARCH, checkpoint=str(checkpoint), model_config=str(config), dim=32)
