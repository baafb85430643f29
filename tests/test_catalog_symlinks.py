"""Issue 13, defect 10: symbolic links cannot bring files from outside a catalog's folder into the index.

Catalog media paths are checked on their real path (links resolved): a link leading outside rejects its
line, naming it; one staying inside works. Folder adds do not follow links unless ``--follow-symlinks``,
and a followed link must still stay inside the folder (unless ``--allow-outside-images`` too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from xmodal import Engine
from xmodal.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX symlinks")

FAST = ["--encoder", "hashing", "--index-kind", "exact"]


def png(path: Path, rgb: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), rgb).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``outside/secret.png`` (and ``outside/more/``), and a catalog folder ``cat/`` with a real image,
    links to outside (a folder and a file) and a link to its own image."""
    png(tmp_path / "outside" / "secret.png", (200, 0, 0))
    png(tmp_path / "outside" / "more" / "other.png", (0, 200, 0))
    cat = tmp_path / "cat"
    png(cat / "img" / "red.png", (220, 20, 20))
    (cat / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (cat / "evil.png").symlink_to(tmp_path / "outside" / "secret.png")
    (cat / "alias.png").symlink_to(cat / "img" / "red.png")
    (cat / "relative.png").symlink_to(Path("..") / "outside" / "secret.png")
    return tmp_path


def add(capsys: pytest.CaptureFixture[str], index: Path, *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["--index", str(index), *FAST, "add", "-q", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_catalog_links_leading_outside_reject_their_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tree / "cat" / "c.jsonl"
    lines = [
        {"id": "via-folder", "title": "t", "image": "linked/secret.png"},
        {"id": "via-file", "title": "t", "image": "evil.png"},
        {"id": "inside-link", "title": "t", "image": "alias.png"},
        {"id": "plain", "title": "t", "image": "img/red.png"},
        {"id": "via-media", "title": "t", "media": {"image": "linked/more/other.png"}},
        {"id": "relative", "title": "t", "image": "relative.png"},
    ]
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, report = add(capsys, tree / "idx", str(catalog))
    assert code == 1 and report["added"] == 2
    rejected = {r["where"]: r["reason"] for r in report["rejected"]}  # type: ignore[attr-defined]
    assert list(rejected) == [f"{catalog}:{n}" for n in (1, 2, 5, 6)]
    for reason in rejected.values():
        assert "outside the catalog's folder through a symbolic link" in reason
        assert "--allow-outside-images" in reason
    assert "item 'via-folder': image:" in rejected[f"{catalog}:1"]
    assert "media.image" in rejected[f"{catalog}:5"]
    with Engine.open(tree / "idx") as engine:
        assert sorted(engine.get(i).id for i in ("inside-link", "plain")) == ["inside-link", "plain"]
        assert "via-folder" not in engine and "via-file" not in engine
        assert len(list((tree / "idx" / "media").rglob("*.png"))) == 1  # the red image only: no secret copied


def test_allow_outside_images_admits_links_to_outside(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tree / "cat" / "c.jsonl"
    catalog.write_text(json.dumps({"id": "via-folder", "title": "t", "image": "linked/secret.png"}) + "\n")
    code, report = add(capsys, tree / "idx", "--allow-outside-images", str(catalog))
    assert code == 0 and report["added"] == 1


def test_csv_catalog_links_are_checked_too(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tree / "cat" / "c.csv"
    catalog.write_text("id,title,image\nin,t,alias.png\nout,t,linked/secret.png\n")
    code, report = add(capsys, tree / "idx", str(catalog))
    assert code == 1 and report["added"] == 1
    (rejection,) = report["rejected"]  # type: ignore[misc]
    assert rejection["where"] == f"{catalog}:3" and "symbolic link" in rejection["reason"]


def test_folder_add_does_not_follow_links_by_default(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tree / "cat"
    code, report = add(capsys, tree / "idx", str(folder))
    assert code == 1 and report["added"] == 1  # img/red.png
    rejected = {r["where"]: r["reason"] for r in report["rejected"]}  # type: ignore[attr-defined]
    assert set(rejected) == {str(folder / n) for n in ("alias.png", "evil.png", "linked", "relative.png")}
    assert all("symbolic link, not followed" in r and "--follow-symlinks" in r for r in rejected.values())
    with Engine.open(tree / "idx") as engine:
        assert len(engine) == 1 and "img/red" in engine


def test_follow_symlinks_follows_inside_links_only(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tree / "cat"
    code, report = add(capsys, tree / "idx", "--follow-symlinks", str(folder))
    assert code == 1 and report["added"] == 2  # img/red.png and alias.png
    rejected = {r["where"]: r["reason"] for r in report["rejected"]}  # type: ignore[attr-defined]
    assert set(rejected) == {str(folder / n) for n in ("evil.png", "linked", "relative.png")}
    assert all("leads outside the folder through a symbolic link" in r for r in rejected.values())
    with Engine.open(tree / "idx") as engine:
        assert "alias" in engine and "img/red" in engine and "linked/secret" not in engine


def test_follow_symlinks_with_allow_outside_reads_everything(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = add(capsys, tree / "idx", "--follow-symlinks", "--allow-outside-images", str(tree / "cat"))
    assert code == 0 and report["added"] == 6


def test_a_link_cycle_is_read_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    png(folder / "a.png", (1, 2, 3))
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    code, report = add(capsys, tmp_path / "idx", "--follow-symlinks", str(folder))
    assert code == 0 and report["added"] == 1


def test_a_folder_named_through_a_link_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png(tmp_path / "real" / "a.png", (1, 2, 3))
    (tmp_path / "named").symlink_to(tmp_path / "real", target_is_directory=True)
    code, report = add(capsys, tmp_path / "idx", str(tmp_path / "named"))
    assert code == 0 and report["added"] == 1
