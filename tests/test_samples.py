"""The sample catalog builder and the demo, on a tiny size (hashing encoder, exact index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("skimage", reason="the sample photos need scikit-image: pip install 'xmodal[samples]'")

from xmodal import samples  # noqa: E402
from xmodal.demo import main as demo_main  # noqa: E402
from xmodal.eval.runner import EvalQuery, read_queries  # noqa: E402
from xmodal.imaging import decode_image, read_image_bytes  # noqa: E402
from xmodal.ltr import autotune  # noqa: E402

SIZE = 8
needs_clipart = pytest.mark.skipif(
    not samples.CLIPART_ROOT.is_dir(), reason=f"{samples.CLIPART_ROOT} missing: apt-get install openclipart-png"
)
needs_wordnet = pytest.mark.skipif(
    not (samples.WORDNET_ROOT / "data.noun").is_file(), reason="WordNet missing: apt-get install wordnet-base"
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="session")
def catalog(data_dir: Path) -> samples.Catalog:
    return samples.build_catalog(data_dir / f"size-{SIZE}", SIZE, log=lambda _: None)


@pytest.fixture(scope="session")
def records(catalog: samples.Catalog) -> list[dict[str, object]]:
    return samples.read_catalog(catalog.catalog)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ids_are_unique_and_every_part_is_there(catalog: samples.Catalog, records: list[dict[str, object]]) -> None:
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == catalog.counts["items"]
    kinds = {str(r["id"]).split("/")[0] for r in records}
    expected = {"photo"} | ({"clipart"} if samples.CLIPART_ROOT.is_dir() else set())
    expected |= {"wordnet"} if (samples.WORDNET_ROOT / "data.noun").is_file() else set()
    assert kinds == expected
    assert {"photo/coffee", "photo/chelsea"} <= set(ids)


def test_the_build_is_deterministic(catalog: samples.Catalog, tmp_path: Path) -> None:
    again = samples.build_catalog(tmp_path / "again", SIZE, log=lambda _: None)
    assert _files(again.root) == _files(catalog.root)


def test_an_up_to_date_folder_is_reused_and_a_foreign_one_refused(catalog: samples.Catalog, tmp_path: Path) -> None:
    before = catalog.catalog.stat().st_mtime_ns
    assert samples.build_catalog(catalog.root, SIZE).counts == catalog.counts
    assert catalog.catalog.stat().st_mtime_ns == before
    (tmp_path / "mine.txt").write_text("not a catalog")
    with pytest.raises(FileExistsError, match="not a sample catalog"):
        samples.build_catalog(tmp_path, SIZE)
    assert (tmp_path / "mine.txt").exists()


def test_every_image_exists_and_decodes(catalog: samples.Catalog, records: list[dict[str, object]]) -> None:
    images = [str(r["image"]) for r in records if "image" in r]
    assert len(images) >= len(samples.PHOTOS) - 1
    for rel in images:
        image = decode_image(read_image_bytes(rel, catalog.root))
        assert image.mode == "RGB" and max(image.size) <= samples.PHOTO_SIDE


def test_queries_are_well_formed_and_judge_real_items(
    catalog: samples.Catalog, records: list[dict[str, object]]
) -> None:
    ids = {r["id"] for r in records}
    parsed = list(read_queries(catalog.queries))
    assert parsed and all(isinstance(q, EvalQuery) for q in parsed), [q for q in parsed if not isinstance(q, EvalQuery)]
    for query in parsed:
        assert isinstance(query, EvalQuery)
        assert query.relevant <= ids, query
        if query.image is not None:
            decode_image(read_image_bytes(query.image, catalog.root))
    lines = [json.loads(line) for line in catalog.queries.read_text().splitlines()]
    assert {"text": "coffee", "kind": "photo-name", "relevant": ["photo/coffee"]} in lines
    assert any(q.get("image") and q["kind"] == "photo-image" for q in lines)


@needs_clipart
def test_clipart_items_carry_their_folder(records: list[dict[str, object]]) -> None:
    clipart = [r for r in records if r["attributes"]["kind"] == "clipart"]  # type: ignore[index]
    assert len(clipart) == SIZE
    for r in clipart:
        rel = str(r["id"]).removeprefix("clipart/") + ".png"
        assert (samples.CLIPART_ROOT / rel).is_file()
        assert rel.startswith(str(r["attributes"]["category"]) + "/")  # type: ignore[index]
    assert any("title" in r for r in clipart) or len(clipart) < 3  # products have titles, image-only items none


@needs_wordnet
def test_wordnet_entries_and_synonym_queries() -> None:
    letter = {pos: code for pos, (code, _) in samples.POS.items()}
    synsets = {f"wordnet/{letter[s.pos]}{s.offset}": s for s in samples.read_synsets()}
    cat = synsets["wordnet/n02121620"]
    assert cat.lemmas[:2] == ("cat", "true_cat") and cat.lexname == "noun.animal" and "feline" in cat.gloss
    words, queries = samples._wordnet(200, lambda _: None, samples.WORDNET_ROOT)
    assert len(words) == len({w["id"] for w in words}) == 200 and len(queries) >= 5
    for query in queries:  # a synonym query judges exactly the chosen synsets that hold the word
        holders = {w["id"] for w in words if query["text"] in _lemmas(synsets[w["id"]])}
        assert set(query["relevant"]) == holders and holders
        assert any(_lemmas(synsets[i])[0] != query["text"] for i in holders)  # not just a title lookup


def _lemmas(synset: samples.Synset) -> list[str]:
    return [lemma.replace("_", " ").lower() for lemma in synset.lemmas]


def test_clean_name_drops_numbering() -> None:
    assert samples.clean_name("apple_bitten_dan_gerhard_01") == "apple bitten dan gerhard"
    assert samples.clean_name("stop_sign_miguel_s_nchez_") == "stop sign miguel s nchez"
    assert samples.clean_name("01") == "01"


def test_missing_debian_packages_are_skipped_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples, "CLIPART_ROOT", tmp_path / "no-openclipart")
    monkeypatch.setattr(samples, "WORDNET_ROOT", tmp_path / "no-wordnet")
    messages: list[str] = []
    built = samples.build_catalog(tmp_path / "out", 3, log=messages.append)
    assert any("openclipart-png" in m for m in messages) and any("wordnet-base" in m for m in messages)
    assert built.skipped == messages
    kinds = {r["attributes"]["kind"] for r in samples.read_catalog(built.catalog)}  # type: ignore[index]
    assert kinds == {"photo"}


def test_demo_smoke(
    data_dir: Path,
    catalog: samples.Catalog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = [
        "--encoder",
        "hashing",
        "--size",
        str(SIZE),
        "--data",
        str(data_dir),
        "-k",
        "3",
        "--index",
        str(tmp_path / "idx"),
    ]
    assert demo_main(args) == 0
    out = capsys.readouterr().out
    assert "index: built" in out
    coffee = out.split('"a cup of coffee"', 1)[1].splitlines()[1].split()
    assert coffee[:3] == ["1", coffee[1], "photo/coffee"]
    for label in ("image:", "text+image:", "filtered: clip-art only", "--where kind=clipart", "--target image"):
        assert label in out
    assert "evaluation on" in out and "\n  all " in out
    if "media: added wordnet-glosses.pdf, narration.mp3, clipart-show.mp4" in out:  # the tools are installed
        page = out.split("── document page:", 1)[1].splitlines()[1].split()
        assert page[2:5] == ["wordnet-glosses.pdf", "page", "2"]
        shot = out.split("── video shot:", 1)[1].splitlines()[1].split()
        assert shot[2] == "clipart-show.mp4" and "–" in shot[3]
        said = out.split("── time in a narration:", 1)[1].splitlines()[1].split()
        assert said[2] == "narration.mp3"
    monkeypatch.setattr(autotune, "MIN_ITEMS", 5)  # the tests keep it off (conftest): the index is due one now
    assert demo_main(args) == 0
    out = capsys.readouterr().out
    assert "index: reusing" in out
    assert "index: the default mode's self-tuning took" in out  # a reused index due a fit gets it first
    assert demo_main(args) == 0
    assert "self-tuning" not in capsys.readouterr().out  # once
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert demo_main([*args[:-1], str(tmp_path / "other")]) == 1
    assert "not a demo index" in capsys.readouterr().err
    assert (tmp_path / "other" / "keep.txt").exists()
