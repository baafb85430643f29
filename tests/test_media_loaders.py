"""The media loader registry, open modalities, ``Content`` as a mapping and declared vector kinds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.toyparts.media import NAME, GlyphEncoder, glyph_file
from xmodal import Engine, Item
from xmodal.encoders import Content, HashingEncoder, kinds_of, normalize
from xmodal.errors import ConfigError, ImageError, ValidationError
from xmodal.ingest.catalog import Located, read_csv, read_jsonl
from xmodal.media_loaders import MEDIA, allow_media, available_media, media_loader
from xmodal.media_loaders.image import ImageLoader
from xmodal.records import Modality, Query, modality_family

allow_media([NAME])  # the glyph loader is named by dotted path: allowed, as an index naming it in its settings does


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 10), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_the_image_loader_is_registered_and_checks_its_input(tmp_path: Path) -> None:
    assert "image" in available_media() and isinstance(media_loader("image"), ImageLoader)
    loaded = media_loader("image").load(png())
    assert loaded.content.size == (12, 10) and loaded.data == png() and loaded.suffix == ".png"
    with pytest.raises(ImageError, match="file not found"):
        media_loader("image").load("missing.png", tmp_path, item="a")
    with pytest.raises(ConfigError, match="unknown media loader 'nosuch'"):
        media_loader("nosuch")
    with pytest.raises(ConfigError, match="not a medium"):
        media_loader("text")
    assert media_loader(NAME).name == NAME  # resolved by its (allowed) dotted path, never registered by a name


def test_modalities_are_open_but_checked() -> None:
    assert Modality("text+image") is Modality.IMAGE_TEXT and Modality.parse("image") is Modality.IMAGE
    glyphs = Modality.parse(f"text+{NAME}")
    assert glyphs == f"{NAME}+text" and glyphs.value == f"{NAME}+text" and glyphs.media == {NAME}
    assert list(Modality) == [Modality.TEXT, Modality.IMAGE, Modality.IMAGE_TEXT]  # the declared ones
    assert modality_family(glyphs) is Modality.IMAGE_TEXT and modality_family(NAME) is Modality.IMAGE
    with pytest.raises(ValidationError, match="unknown modality 'hologram'"):  # no loader of that medium
        Modality.parse("hologram")
    item = Item.create("g", title="t", media={NAME: "a.json"})
    assert item.modality == f"{NAME}+text" and item.image is None
    assert Item.create("i", title="t", image="a.png").media == {"image": "a.png"}
    with pytest.raises(ValidationError, match=f"media.{NAME}"):
        Item.create("g", title="t", modality=f"{NAME}+text")  # the medium is missing
    with pytest.raises(ValidationError, match="image"):
        Item.create("g", title="t", image="a.png", media={"image": "b.png"})
    with pytest.raises(ValidationError, match="query"):
        Query(media={"nosuch": "x"})


def test_content_is_a_mapping_and_kinds_are_declared() -> None:
    image = Image.new("RGB", (8, 8), "white")
    both = Content(text="a cat", image=image)
    assert both.image is image and both.media == {"image": image} and set(both.parts()) == {"text", "image"}
    assert Content(media={"image": image}).image is image
    with pytest.raises(ValidationError, match="content"):
        Content()
    assert kinds_of(HashingEncoder()) == {"text": ("text",), "image": ("image",), "combined": ("text", "image")}
    assert kinds_of(GlyphEncoder())["glyphs"] == (NAME,)
    enc = HashingEncoder()
    with pytest.raises(ValidationError, match=f"content.{NAME}"):
        enc.encode([Content(media={NAME: "abc"})])
    # a content of several parts is the renormalised mean of each part's vector, as before
    text, img = enc.encode([Content(text="a cat")])[0], enc.encode([Content(image=image)])[0]
    assert np.allclose(enc.encode([both])[0], normalize(text + img), atol=1e-6)


def test_combined_vectors_and_kept_media_are_unchanged(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        engine.add([Item.create("p", title="red shirt", image=png())])
        vectors = engine.vectors("p")
        assert set(vectors) == {"text", "image", "combined"}
        assert np.allclose(vectors["combined"], normalize(vectors["text"] + vectors["image"]), atol=1e-6)
        ref = engine.get("p").image
        assert isinstance(ref, str) and ref.endswith(".png") and engine.media.path(ref).read_bytes() == png()


def test_an_item_no_vector_can_be_made_of_is_rejected_alone(tmp_path: Path) -> None:
    from tests.toyparts.encoder import LetterEncoder

    with Engine.open(tmp_path / "idx", encoder=LetterEncoder(), index="exact", extensions=[]) as engine:
        report = engine.add([Item.create("img", image=png()), Item.create("t", title="text")])
        assert report.added == ["t"] and report.rejected[0].where == "img"
        assert "makes no vector from image" in report.rejected[0].reason


def test_catalogs_take_media_parent_and_span(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_bytes(glyph_file("abc"))
    jsonl = tmp_path / "c.jsonl"
    lines = [
        {"id": "a", "title": "t", "media": {NAME: "g.json", "image": "x.png"}},
        {"id": "b", "text": "page", "parent": "a", "span": {"page": 2}},
        {"id": "c", "title": "t", "media": {NAME: "../outside.json"}},
        {"id": "d", "title": "t", "media": ["g.json"]},
    ]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = list(read_jsonl(jsonl))
    first, second = records[0], records[1]
    assert isinstance(first, Located) and first.item.media == {NAME: "g.json", "image": "x.png"}
    assert first.item.modality == f"image+{NAME}+text"
    assert isinstance(second, Located) and second.item.parent == "a" and second.item.span is not None
    assert "outside the catalog" in getattr(records[2], "reason", "") and "media" in getattr(records[3], "reason", "")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(
        'id,text,media,parent,span\nx,hello,"{""image"": ""x.png""}",,\ny,clip,,x,"[1.5, 3]"\nz,bad,{oops,,\n'
    )
    rows = list(read_csv(csv_path))
    assert isinstance(rows[0], Located) and rows[0].item.image == "x.png"
    assert isinstance(rows[1], Located) and rows[1].item.span is not None and rows[1].item.span.end == 3.0
    assert "media" in getattr(rows[2], "reason", "")


def test_an_item_whose_loader_is_gone_still_reads_back(tmp_path: Path) -> None:
    from tests.toyparts.media import Glyphs
    from xmodal import media_loaders

    MEDIA.register("runes", Glyphs)
    try:
        with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
            engine.add([Item.create("r", title="runes", media={"runes": glyph_file("abc")})])
    finally:
        MEDIA.unregister("runes")
        media_loaders._instances.pop("runes", None)
    with Engine.open(tmp_path / "idx") as engine:  # the loader is not installed here
        item = engine.get("r")
        assert item.modality == "runes+text" and set(item.media) == {"runes"}
        with pytest.raises(ValidationError, match="no media loader 'runes'"):
            Item.create("r2", title="t", modality="runes+text", media={"runes": "x"})
