"""Catalog readers and the issue's "Bad input" list for catalogs: every bad record is rejected with
where it is (file:line or file), the field and the fix, and the valid records of the batch are added."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Modality
from xmodal.ingest import catalog
from xmodal.ingest.catalog import Located, add_catalogs, read_catalog, read_csv, read_image_folder, read_jsonl
from xmodal.ingest.prepare import Rejection


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: int = 32, noise: bool = False) -> bytes:
    if noise:
        arr = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
        image = Image.fromarray(arr)
    else:
        image = Image.new("RGB", (size, size), color)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width × height`` pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def reasons(report_rejected: list[Rejection]) -> dict[str, str]:
    return {r.where: r.reason for r in report_rejected}


# -- JSON Lines -----------------------------------------------------------------------------------


def test_jsonl_reads_items_with_locations(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "red.png").write_bytes(png_bytes())
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": "1", "title": "red square", "image": "img/red.png", "attributes": {"color": "red", "price": 2.5}},
            "",
            {"id": 2, "text": "plain text", "modality": "text"},
        ],
    )
    records = list(read_jsonl(path))
    assert [type(r) for r in records] == [Located, Located]
    first, second = (r for r in records if isinstance(r, Located))
    assert first.where == f"{path}:1" and second.where == f"{path}:3"
    assert first.item.modality is Modality.IMAGE_TEXT and first.item.image == "img/red.png"
    assert dict(first.item.attributes) == {"color": "red", "price": 2.5}
    assert second.item.id == "2" and second.item.modality is Modality.TEXT


def test_unknown_field_names_the_field_and_suggests_the_fix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "titel": "typo"}, {"id": "b", "colour": "red", "title": "x"}])
    first, second = list(read_jsonl(path))
    assert isinstance(first, Rejection) and first.where == f"{path}:1"
    assert "titel: unknown field" in first.reason and "did you mean 'title'" in first.reason and "'a'" in first.reason
    assert isinstance(second, Rejection) and "colour" in second.reason and "attributes" in second.reason


def test_invalid_json_rejects_only_that_line(tmp_path: Path, engine: Engine) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": "a", "title": "alpha"},
            '{"id": "b", "title": ',
            "[1, 2]",
            b"\xff\xfe".decode("latin-1"),
            {"id": "c", "title": "gamma"},
        ],
    )
    report = add_catalogs(engine, [path])
    assert sorted(report.added) == ["a", "c"]
    why = reasons(report.rejected)
    assert set(why) == {f"{path}:2", f"{path}:3", f"{path}:4"}
    assert "not valid JSON" in why[f"{path}:2"] and "not an object" in why[f"{path}:3"]


def test_non_utf8_line_and_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b'{"id": "a", "title": "caf\xe9"}\n{"id": "b", "id": "c", "title": "t"}\n{"id": "d", "title": "ok"}\n'
    )
    first, second, third = list(read_jsonl(path))
    assert isinstance(first, Rejection) and "UTF-8" in first.reason
    assert isinstance(second, Rejection) and "given twice" in second.reason
    assert isinstance(third, Located) and third.item.id == "d"


def test_bad_field_types(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"title": "no id"},
            {"id": ["x"], "title": "t"},
            {"id": "t", "title": 5},
            {"id": "at", "title": "t", "attributes": {"nested": {"a": float("nan")}}},  # nesting is fine, NaN is not
            {"id": "m", "title": "t", "modality": "hologram"},
            {"id": "e"},
        ],
    )
    records = list(read_jsonl(path))
    assert all(isinstance(r, Rejection) for r in records)
    text = [r.reason for r in records if isinstance(r, Rejection)]
    assert "id: is missing" in text[0] and "id: must be a string" in text[1]
    assert "title: must be a string" in text[2] and "attributes.nested.a: is NaN" in text[3]
    assert "unknown modality" in text[4] and "no title, text or image" in text[5]


def test_overlong_line_is_skipped_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "MAX_LINE_BYTES", 200)
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "title": "x" * 1000}, {"id": "b", "title": "short"}])
    first, second = list(read_jsonl(path))
    assert isinstance(first, Rejection) and "longer than" in first.reason and first.where.endswith(":1")
    assert isinstance(second, Located) and second.where.endswith(":2")


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(20_000):
            f.write(json.dumps({"id": f"i{i}", "title": f"item number {i} " + "padding " * 20}) + "\n")
    tracemalloc.start()
    count = sum(1 for r in read_jsonl(path) if isinstance(r, Located))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20_000
    assert peak < 2 * 1024 * 1024, f"reading held {peak / 1e6:.1f} MB: not streaming"  # the file is ~4 MB


# -- images referenced by catalogs ---------------------------------------------------------------


@pytest.fixture
def image_catalog(tmp_path: Path) -> Path:
    """A catalog whose lines cover every bad image case, plus good items around them."""
    d = tmp_path / "cat"
    (d / "img").mkdir(parents=True)
    (d / "img" / "good.png").write_bytes(png_bytes())
    (d / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    full = png_bytes(noise=True, size=64)
    (d / "img" / "truncated.png").write_bytes(full[: len(full) // 2])
    (d / "img" / "bomb.png").write_bytes(png_header_only(8000, 8000))
    (d / "img" / "huge.png").write_bytes(png_header_only(30000, 30000))
    Image.new("RGB", (16, 16), (0, 0, 255)).save(d / "img" / "icon.ico")
    Image.new("RGB", (16, 16), (0, 0, 255)).save(d / "img" / "disguised.png", format="ICO")
    (d / "img" / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "outside.png").write_bytes(png_bytes())
    lines: list[object] = [
        {"id": "good", "title": "a red square", "image": "img/good.png"},
        {"id": "missing", "image": "img/nope.png"},
        {"id": "corrupt", "image": "img/corrupt.png"},
        {"id": "truncated", "image": "img/truncated.png"},
        {"id": "bomb", "image": "img/bomb.png"},
        {"id": "huge", "image": "img/huge.png"},
        {"id": "ico", "image": "img/icon.ico"},
        {"id": "disguised", "image": "img/disguised.png"},
        {"id": "svg", "image": "img/drawing.svg"},
        {"id": "escape", "image": "../outside.png"},
        {"id": "absolute", "image": str(tmp_path / "outside.png")},
        {"id": "text", "title": "just text"},
    ]
    return write_jsonl(d / "catalog.jsonl", lines)


def test_bad_images_rejected_with_line_and_fix(image_catalog: Path, engine: Engine) -> None:
    report = add_catalogs(engine, [image_catalog])
    assert sorted(report.added) == ["good", "text"]
    why = reasons(report.rejected)
    line = {
        name: f"{image_catalog}:{n}"
        for n, name in enumerate(
            [
                "good",
                "missing",
                "corrupt",
                "truncated",
                "bomb",
                "huge",
                "ico",
                "disguised",
                "svg",
                "escape",
                "absolute",
            ],
            1,
        )
    }
    assert "file not found" in why[line["missing"]] and "fix the path" in why[line["missing"]]
    assert "'corrupt'" in why[line["corrupt"]]
    assert "truncated" in why[line["truncated"]] or "corrupt" in why[line["truncated"]]
    assert "exceeds the limit" in why[line["bomb"]] and "downscale" in why[line["bomb"]]
    assert "bomb" in why[line["huge"]].lower()
    assert "ICO is not allowed" in why[line["ico"]] and "convert it" in why[line["ico"]]
    assert "ICO is not allowed" in why[line["disguised"]]
    assert "'svg'" in why[line["svg"]] and "not a readable image" in why[line["svg"]] and "PNG" in why[line["svg"]]
    for name in ("escape", "absolute"):
        assert "outside the catalog's folder" in why[line[name]] and "--allow-outside-images" in why[line[name]]
    # rejections come back in file order
    assert [r.where for r in report.rejected] == sorted(why, key=lambda w: int(w.rsplit(":", 1)[1]))
    assert engine.get("good").modality is Modality.IMAGE_TEXT and "bomb" not in engine


def test_allow_outside_admits_paths_outside_the_folder(image_catalog: Path, engine: Engine) -> None:
    report = add_catalogs(engine, [image_catalog], allow_outside=True)
    assert {"escape", "absolute"} <= set(report.added)


def test_duplicate_ids_within_and_across_files(tmp_path: Path, engine: Engine) -> None:
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "title": "first"}, {"id": "a", "title": "second"}])
    two = tmp_path / "two.csv"
    two.write_text("id,title\na,third\nb,fourth\n")
    report = add_catalogs(engine, [one, two])
    assert sorted(report.added) == ["a", "b"] and engine.get("a").title == "first"
    why = reasons(report.rejected)
    assert set(why) == {f"{one}:2", f"{two}:2"}
    assert all("duplicate id" in r and "'a'" in r for r in why.values())


def test_missing_path_and_unknown_catalog_type(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "notes.docx").write_text("hello")  # (a .txt file is a document: tests/test_documents_seam.py)
    good = write_jsonl(tmp_path / "ok.jsonl", [{"id": "x", "title": "fine"}])
    report = add_catalogs(engine, [tmp_path / "nope.jsonl", tmp_path / "notes.docx", good])
    assert report.added == ["x"]
    why = reasons(report.rejected)
    assert "no such file" in why[str(tmp_path / "nope.jsonl")]
    assert "not a catalog" in why[str(tmp_path / "notes.docx")] and ".jsonl" in why[str(tmp_path / "notes.docx")]


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_attributes_as_columns_and_json(tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(png_bytes())
    path = tmp_path / "c.csv"
    path.write_text(
        "id,title,text,image,attributes.color,attributes.price,attributes.code,attributes\n"
        'a,Red mug,"a mug, red",p.png,red,4.5,01234,"{""in_stock"": true}"\n'
        "b,Pen,,,blue,3,,\n"
        "\n"
        'c,"multi\nline title",,,green,true,,\n'
    )
    records = list(read_csv(path))
    assert all(isinstance(r, Located) for r in records)
    a, b, c = (r for r in records if isinstance(r, Located))
    assert dict(a.item.attributes) == {"color": "red", "price": 4.5, "code": "01234", "in_stock": True}
    assert a.item.text == "a mug, red" and a.item.image == "p.png" and a.where == f"{path}:2"
    assert dict(b.item.attributes) == {"color": "blue", "price": 3} and b.item.image is None
    assert c.where == f"{path}:5" and c.item.attributes["price"] is True


def test_csv_unknown_column_rejects_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,titel,color\na,x,red\n")
    records = list(read_csv(path))
    assert len(records) == 1 and isinstance(records[0], Rejection)
    assert records[0].where == f"{path}:1"
    assert "titel: unknown field" in records[0].reason and "did you mean 'title'" in records[0].reason
    assert "attributes.titel" in records[0].reason


def test_csv_bad_rows_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,title,attributes\na,ok,\nb,too,many,cells\nc,bad attrs,"[1]"\nd,fine,"{""k"": 1}"\n')
    records = list(read_csv(path))
    assert [r.item.id for r in records if isinstance(r, Located)] == ["a", "d"]
    rejected = {r.where: r.reason for r in records if isinstance(r, Rejection)}
    assert "4 cells but the header has 3" in rejected[f"{path}:3"]
    assert "not a JSON object" in rejected[f"{path}:4"]


def test_csv_without_id_column(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("title\nx\n")
    (record,) = list(read_csv(path))
    assert isinstance(record, Rejection) and "no id column" in record.reason


# -- folders of images ----------------------------------------------------------------------------


def test_image_folder(tmp_path: Path, engine: Engine) -> None:
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "tabby_cat-01.png").write_bytes(png_bytes((120, 90, 40)))
    (root / "sunset.jpg").write_bytes(png_bytes((250, 120, 0)))  # wrong extension, real PNG: accepted by content
    (root / "broken.png").write_bytes(b"not an image")
    (root / "logo.svg").write_text("<svg/>")
    (root / "README.txt").write_text("hi")  # a document: its parent item and one chunk
    (root / "notes.docx").write_text("hi")
    (root / ".hidden.png").write_bytes(png_bytes())
    records = list(read_image_folder(root))
    located = {r.item.id: r for r in records if isinstance(r, Located)}
    assert set(located) == {"cats/tabby_cat-01", "sunset", "broken", "README.txt", "README.txt#p1"}
    tabby = located["cats/tabby_cat-01"].item
    assert tabby.title == "tabby cat 01" and tabby.attributes["folder"] == "cats" and tabby.modality is Modality.IMAGE
    assert located["sunset"].item.attributes["folder"] == "photos"
    refused = {Path(r.where).name: r.reason for r in records if isinstance(r, Rejection)}
    assert set(refused) == {"logo.svg", "notes.docx"}
    assert "not an allowed image format" in refused["logo.svg"] and "PNG" in refused["logo.svg"]

    report = add_catalogs(engine, [root])
    assert sorted(report.added) == ["README.txt", "README.txt#p1", "cats/tabby_cat-01", "sunset"]
    assert {Path(r.where).name for r in report.rejected} == {"broken.png", "logo.svg", "notes.docx"}
    assert catalog.estimate_records(root) == 6  # hidden files are skipped


def test_image_folder_names_as_text(tmp_path: Path) -> None:
    (tmp_path / "red_apple.png").write_bytes(png_bytes())
    (record,) = list(read_catalog(tmp_path, name_as_text=True))
    assert isinstance(record, Located) and record.item.modality is Modality.IMAGE_TEXT
    assert record.item.document_text == "red apple"


def test_single_image_file(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "blue-sky.png").write_bytes(png_bytes((30, 60, 250)))
    (record,) = list(read_catalog(tmp_path / "shots" / "blue-sky.png"))
    assert isinstance(record, Located) and record.item.id == "blue-sky"
    assert record.item.attributes["folder"] == "shots" and record.item.title == "blue sky"
    report = add_catalogs(engine, [tmp_path / "shots" / "blue-sky.png"])
    assert report.added == ["blue-sky"] and not report.rejected


def test_estimate_records(tmp_path: Path) -> None:
    jl = write_jsonl(tmp_path / "a.jsonl", [{"id": str(i), "title": "t"} for i in range(7)])
    cs = tmp_path / "b.csv"
    cs.write_text("id,title\n1,a\n2,b")  # no final newline
    assert catalog.estimate_records(jl) == 7 and catalog.estimate_records(cs) == 2
