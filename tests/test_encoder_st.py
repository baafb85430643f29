"""The ``sentence-transformers`` backend on a tiny SentenceTransformer built from modules (random weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import tiny_sentence_transformer
from xmodal import Engine, Item
from xmodal.encoders import Content, create_encoder
from xmodal.errors import ConfigError

pytest.importorskip("sentence_transformers")

TEXTS = ["a red running shoe", "a blue teapot", "green garden hose", "a black umbrella", "an oak table"]


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "tiny-st")


def test_vectors_equal_the_librarys(st_dir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    want = SentenceTransformer(str(st_dir), device="cpu").encode(TEXTS, normalize_embeddings=True)
    enc = create_encoder("sentence-transformers", model=str(st_dir), device="cpu")
    got = enc.encode_documents([Content(text=t) for t in TEXTS])
    assert enc.dim == 32 and enc.modalities == frozenset({"text"})
    assert got.shape == want.shape and np.min(np.sum(got * want, axis=1)) >= 0.999
    queries = enc.encode_queries([Content(text=t) for t in TEXTS])  # no prompts: the same vectors
    assert np.min(np.sum(queries * want, axis=1)) >= 0.999
    cut = create_encoder("sentence-transformers", model=str(st_dir), dim=8).encode_documents([Content(text=TEXTS[0])])
    expected = want[0, :8] / np.linalg.norm(want[0, :8])
    assert cut.shape == (1, 8) and float(cut[0] @ expected) >= 0.999


def test_an_index_records_the_model_and_refuses_another(st_dir: Path, tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder="sentence-transformers", encoder_options={"model": str(st_dir)}) as e:
        e.add([Item.create(f"t{i}", text=t) for i, t in enumerate(TEXTS)])
        assert e.search("a blue teapot", k=1, mode="dense").hits.ids[0] == "t1"
        config = e.info()["encoder"]
    assert config["model"] == str(st_dir) and config["identity"]["fingerprint"].startswith("sha256:")
    other = tiny_sentence_transformer(tmp_path / "other-st", hidden=16, seed=1)
    with pytest.raises(ConfigError, match="option model=.*not .*other-st"):
        Engine.open(tmp_path / "idx", encoder_options={"model": str(other)})
    with Engine.open(tmp_path / "idx") as e:  # the index is as it was
        assert len(e) == len(TEXTS)


def test_bad_settings_name_the_fix(st_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dim must be an integer from 1 to 32.*--dim 32"):
        create_encoder("sentence-transformers", model=str(st_dir), dim=64)
    with pytest.raises(
        ConfigError, match="no weights for model 'nobody/no-such-model'.*--encoder-option model=/path.*download"
    ):
        create_encoder("sentence-transformers", model="nobody/no-such-model")
    with pytest.raises(ConfigError, match="is not a folder"):
        create_encoder("sentence-transformers", model=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="unknown encoder 'sentence-transformer'.*sentence-transformers"):
        create_encoder("sentence-transformer", model=str(st_dir))
