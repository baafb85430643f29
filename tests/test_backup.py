"""Backup and restore: consistent under concurrent writes, verified on restore, and refusing what would lose
data (a destination that exists, a truncated or damaged backup, an index a process has open)."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmodal import Engine, Item, StorageError, ValidationError
from xmodal.check import check
from xmodal.cli import main
from xmodal.encoders import HashingEncoder
from xmodal.restore import restore
from xmodal.store.backup import MANIFEST, read_manifest, verify, write_backup
from xmodal.store.inuse import take_exclusive

from .conftest import text_items


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(out, format="PNG")
    return out.getvalue()


def _open(path: Path) -> Engine:
    return Engine.open(path, encoder=HashingEncoder(), index="exact")


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (SQLite's transient side files aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def _stored_ids(store: Path) -> set[str]:
    with sqlite3.connect(store) as db:
        return {row[0] for row in db.execute("SELECT id FROM items")}


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """An index with text items, images (media files), feedback and checkpointed derived state."""
    path = tmp_path / "idx"
    with _open(path) as engine:
        engine.add(text_items(30))
        engine.add([Item.create("red", image=_png((255, 0, 0)), title="red square")])
        engine.add([Item.create("blue", image=_png((0, 0, 255)), title="blue square")])
        result = engine.search("item red", log=True)
        engine.feedback(str(result.query_id), str(result.hits.ids[0]), "click")
        engine.delete(["t3"])
    return path


def test_round_trip_keeps_items_vectors_media_and_feedback(index: Path, tmp_path: Path) -> None:
    with _open(index) as engine:
        manifest = engine.backup(tmp_path / "bk")
        before = {i: engine.vectors(i)["text"] for i in ("t0", "t7", "red")}
        query = engine.search("blue square", k=3)
    assert manifest.items == 31 and (tmp_path / "bk" / MANIFEST).is_file()
    assert any(f.path.startswith("media/") for f in manifest.files) and not manifest.missing_media
    report = restore(tmp_path / "bk", tmp_path / "back")
    assert report.items == 31 and report.store_seq == manifest.store_seq and not report.replaced
    with _open(tmp_path / "back") as engine:
        assert check(engine).ok and len(engine) == 31 and "t3" not in engine
        for item_id, vector in before.items():
            np.testing.assert_array_equal(engine.vectors(item_id)["text"], vector)
        assert engine.media.path(str(engine.get("red").image)).read_bytes() == _png((255, 0, 0))
        assert engine.search("blue square", k=3).hits.ids.tolist() == query.hits.ids.tolist()
        assert engine.feedback_log.marks()[1] >= 1  # the click is in the restored feedback log
        assert engine.backend.saved_seq == manifest.store_seq  # derived state caught up and checkpointed


def test_backup_while_writers_run_holds_every_write_acknowledged_before_it(tmp_path: Path) -> None:
    """Eight threads add items while a backup is taken: every add acknowledged before the backup began is in
    it, the backup holds exactly the writes of its store snapshot, and the restored index passes the check."""
    path = tmp_path / "idx"
    engine = _open(path)
    engine.add(text_items(200))
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            item_id = f"w{n}-{i}"
            engine.add([Item.create(item_id, title=f"written {n} {i}", attributes={"writer": n})])
            acked.append((time.monotonic(), item_id))
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    manifest = write_backup(path, tmp_path / "bk")  # as `xmodal backup` does, beside the writing engine
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    engine.close()
    before = {item_id for at, item_id in acked if at < started}
    in_backup = _stored_ids(tmp_path / "bk" / "store.sqlite")
    assert before and before <= in_backup
    assert len(acked) > len(before)  # writes went on during the backup
    restore(tmp_path / "bk", tmp_path / "back")
    with _open(tmp_path / "back") as restored:
        report = check(restored)
        assert report.ok, report.problems()
        assert {i for i in in_backup} == {i for i in _stored_ids(tmp_path / "back" / "store.sqlite")}
        assert len(restored) == manifest.items and restored.store.last_seq() == manifest.store_seq
        assert all(item_id in restored for item_id in before)


def test_backup_to_a_path_that_exists_is_refused(index: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "file").write_text("x")
    for dest in (tmp_path / "taken", tmp_path / "file"):
        with pytest.raises(ValidationError, match="already exists.*new path") as info:
            write_backup(index, dest)
        assert info.value.field == "destination"
    assert list((tmp_path / "taken").iterdir()) == [] and (tmp_path / "file").read_text() == "x"
    assert not list(tmp_path.glob("*.partial"))


def test_restore_from_a_truncated_backup_leaves_the_index_untouched(index: Path, tmp_path: Path) -> None:
    write_backup(index, tmp_path / "bk")
    store = tmp_path / "bk" / "store.sqlite"
    store.write_bytes(store.read_bytes()[:8192])
    before = _files(index)
    with pytest.raises(StorageError, match=r"damaged or incomplete: store.sqlite has 8,192 bytes.*another backup"):
        restore(tmp_path / "bk", index, replace=True)
    assert _files(index) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "idx"]  # no temporary folder left


def test_restore_from_a_damaged_backup_is_refused(index: Path, tmp_path: Path) -> None:
    write_backup(index, tmp_path / "bk")
    target = next(p for p in (tmp_path / "bk" / "media").rglob("*") if p.is_file())
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    target.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="differs from the checksum"):
        verify(tmp_path / "bk", read_manifest(tmp_path / "bk"))
    with pytest.raises(StorageError, match="differs from the checksum.*nothing was restored"):
        restore(tmp_path / "bk", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_restore_from_a_folder_without_manifest_says_what_it_is_not(index: Path, tmp_path: Path) -> None:
    write_backup(index, tmp_path / "bk")
    (tmp_path / "bk" / MANIFEST).unlink()
    with pytest.raises(ValidationError, match="no manifest.json: it is not a complete xmodal backup") as info:
        restore(tmp_path / "bk", tmp_path / "new")
    assert info.value.field == "backup"
    (tmp_path / "bk" / MANIFEST).write_text("{not json")
    with pytest.raises(StorageError, match="not a readable backup manifest"):
        restore(tmp_path / "bk", tmp_path / "new")


def test_restore_over_an_open_index_is_refused(index: Path, tmp_path: Path) -> None:
    write_backup(index, tmp_path / "bk")
    with _open(index) as engine:
        engine.add(text_items(3, prefix="late"))
        before = _files(index)
        with pytest.raises(ValidationError, match="open in another process.*stop that server") as info:
            restore(tmp_path / "bk", index, replace=True)
        assert info.value.field == "index" and _files(index) == before and "late0" in engine
    report = restore(tmp_path / "bk", index, replace=True)  # closed: it is replaced
    assert report.replaced
    with _open(index) as engine:
        assert "late0" not in engine and len(engine) == 31


def test_an_index_is_not_opened_while_a_restore_holds_it(index: Path) -> None:
    use = take_exclusive(index)
    try:
        with pytest.raises(StorageError, match="being replaced by `xmodal restore`"):
            _open(index)
    finally:
        assert use is not None
        use.release()
    _open(index).close()


def test_restore_over_an_existing_index_needs_replace(index: Path, tmp_path: Path) -> None:
    write_backup(index, tmp_path / "bk")
    with pytest.raises(ValidationError, match="already holds an index.*--replace"):
        restore(tmp_path / "bk", index)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="holds something else than an xmodal index"):
        restore(tmp_path / "bk", tmp_path / "other", replace=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_a_checkpoint_older_than_the_store_is_caught_up_on_restore(index: Path, tmp_path: Path) -> None:
    """The derived state is copied before the store: writes after the last checkpoint are replayed."""
    engine = _open(index)
    engine.add(text_items(5, prefix="after"))  # committed, not checkpointed (the engine stays open)
    manifest = engine.backup(tmp_path / "bk")
    state = json.loads((tmp_path / "bk" / "index" / "state.json").read_text())
    assert state["seq"] < manifest.store_seq
    engine.close()
    restore(tmp_path / "bk", tmp_path / "back")
    with _open(tmp_path / "back") as restored:
        assert check(restored).ok and "after4" in restored
        assert restored.search("item 4", k=40).hits.ids.tolist().count("after4") == 1


def test_cli_backup_and_restore(index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bk = tmp_path / "bk"
    assert main(["--index", str(index), "backup", str(bk), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 31 and summary["files"] >= 4
    assert main(["--index", str(index), "backup", str(bk)]) == 1
    assert "destination" in capsys.readouterr().err
    assert main(["--index", str(tmp_path / "back"), "restore", str(bk)]) == 0
    assert "restored 31 items" in capsys.readouterr().out
    assert main(["--index", str(tmp_path / "back"), "restore", str(bk)]) == 1
    assert "--replace" in capsys.readouterr().err
    assert main(["--index", str(tmp_path / "back"), "check"]) == 0
