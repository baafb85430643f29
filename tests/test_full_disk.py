"""Issue 13, defect 6: a full disk. Reads keep working (an open that has nothing to write writes nothing, and
a store SQLite cannot map its ``-shm`` for is opened read-only); a write is a :class:`DiskFull` naming the
folder and the fix (507 over REST, a one-line error from the CLI) and keeps nothing of itself; no ``*.tmp``
file or folder is left; once space is freed, writes work again.

The store is filled with ``PRAGMA max_page_count`` (SQLite answers ``SQLITE_FULL`` exactly as on a full
disk), media with an ``ENOSPC`` injected at ``fsync``; where ``mount`` is allowed (root on Linux), a small
tmpfs is filled for real."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_integrity import xmodal
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.errors import DiskFull
from xmodal.store.sqlite import SQLiteStore

from .conftest import text_items


def fill_store(store: SQLiteStore) -> None:
    """Let the store's connection grow no further: its next growing write fails with ``SQLITE_FULL``."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")


def free_store(store: SQLiteStore) -> None:
    store._db.execute("PRAGMA max_page_count = 1073741823")


def big_items(n: int, prefix: str) -> list[Item]:
    return [Item.create(f"{prefix}{i}", title=f"big {i}", text="word " * 2000) for i in range(n)]


def png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, 7, 9)).save(buf, format="PNG")
    return buf.getvalue()


def leftovers(index: Path) -> list[str]:
    return [str(p.relative_to(index)) for p in index.rglob("*") if p.name.endswith(".tmp")]


def assert_searchable(engine: Engine, ids: list[str]) -> None:
    for item_id in ids:
        assert item_id in engine
    found = engine.search(Query(text="item", k=len(ids) + 5, mode="dense")).hits.ids.tolist()
    assert set(ids) <= set(found)
    info = engine.info()
    assert info["vectors"]["text"] == info["items"]  # every item has a text vector


def test_a_full_store_refuses_a_write_clearly_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        acked = engine.add(text_items(30)).added
        fill_store(engine.store)
        with pytest.raises(DiskFull) as caught:
            engine.add(big_items(200, "b"))
        assert str(index) in str(caught.value) and "free space on the disk" in str(caught.value)
        assert caught.value.folder == str(index)
        assert "b0" not in engine and len(engine) == 30  # the failed batch kept nothing
        assert_searchable(engine, acked)  # reads work on the full store
        free_store(engine.store)
        more = engine.add(big_items(5, "c")).added  # space again: writes work without reopening
        assert_searchable(engine, acked + more)
    assert leftovers(index) == []
    assert xmodal(index, "check").returncode == 0


def test_a_full_store_answers_507_over_rest_and_keeps_serving_searches(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    key = "full-disk-writer-1"
    config = ServeConfig(log_requests=False, mcp=False, keys=(ApiKey(key, frozenset({"read", "write"})),))
    auth = {"Authorization": f"Bearer {key}"}

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(10))
        fill_store(engine.store)
        with serve_in_thread(create_app(engine, config)) as url:
            items = [{"id": f"r{i}", "title": "big", "text": "word " * 2000} for i in range(100)]
            answer = httpx.post(f"{url}/items", json={"items": items}, headers=auth, timeout=30)
            assert answer.status_code == 507, answer.text
            body = answer.json()
            assert "no space left" in body["error"] and body["fix"].startswith("free space on the disk holding")
            assert body["request_id"] == answer.headers["X-Request-ID"]
            assert httpx.post(f"{url}/search", json={"text": "item", "mode": "dense"}).status_code == 200
            free_store(engine.store)
            assert httpx.post(f"{url}/items", json={"items": items[:3]}, headers=auth, timeout=30).status_code == 200


def test_a_media_write_on_a_full_disk_leaves_no_tmp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "idx"

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("kept", title="item kept", image=png(1))])
        with monkeypatch.context() as patch:
            patch.setattr("xmodal.store.files.os.fsync", no_space)  # the media file is written by write_bytes
            with pytest.raises(DiskFull, match="free space on the disk"):
                engine.add([Item.create("lost", title="item lost", image=png(2))])
        assert leftovers(index) == [] and "lost" not in engine
        assert_searchable(engine, ["kept"])
        engine.add([Item.create("later", title="item later", image=png(2))])
        assert_searchable(engine, ["kept", "later"])


@contextmanager
def mounted(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` on ``folder`` (root on Linux); the test is skipped where ``mount`` is not allowed."""
    folder.mkdir()
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("no mount here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount is not allowed here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (root on Linux); skipped where ``mount`` is not allowed (the tests above inject the
    same failures without it)."""
    with mounted(tmp_path / "disk", "3m") as folder:
        yield folder


def fill(disk: Path, name: str = "filler") -> Path:
    """Fill the disk: a file written until ``ENOSPC``."""
    filler = disk / name
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_real_full_disk_reads_work_writes_fail_clearly_and_recover(tmpfs: Path, tmp_path: Path) -> None:
    index = tmpfs / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        acked = engine.add(text_items(40)).added
    engine = Engine.open(index)  # open before the disk fills, as a running server is
    acked += engine.add(text_items(5, prefix="late")).added  # applied, not yet checkpointed
    filler = fill(tmpfs)
    with pytest.raises(DiskFull, match="free space on the disk"):
        engine.add([Item.create("img", title="item img", image=png(3)), *big_items(50, "b")])
    assert "img" not in engine and "b0" not in engine
    assert_searchable(engine, acked)
    engine.close()  # its checkpoint has no room: a warning, and no temporary folder left
    assert leftovers(index) == []

    # a fresh process on the full disk: SQLite has no room for its -shm file, so the store opens read-only
    shutil.rmtree(index / "index", ignore_errors=True)  # derived: rebuilt in memory from the store
    refiller = fill(tmpfs, "refiller")  # what that freed is taken again: the disk stays full
    info = xmodal(index, "info", "--json")
    assert info.returncode == 0, info.stderr
    search = xmodal(index, "search", "item", "--mode", "dense")
    assert search.returncode == 0 and "Traceback" not in search.stderr, search.stderr
    catalog = tmp_path / "more.jsonl"
    catalog.write_text('{"id": "m1", "title": "item m1"}\n')
    refused = xmodal(index, "add", str(catalog), "-q")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "free space on the disk" in refused.stderr and str(index) in refused.stderr
    with Engine.open(index) as reader:
        assert_searchable(reader, acked)
        with pytest.raises(DiskFull, match="free space on the disk"):
            reader.add([Item.create("x", title="x")])
    assert leftovers(index) == []

    filler.unlink()  # space again: a fresh open writes
    refiller.unlink()
    added = xmodal(index, "add", str(catalog), "-q")
    assert added.returncode == 0, added.stderr
    with Engine.open(index) as engine:
        assert_searchable(engine, [*acked, "m1"])
    assert xmodal(index, "check").returncode == 0


def test_an_index_opens_on_a_full_disk_when_the_memory_index_must_catch_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by ``benchmarks/bench_faults.py``: the ``ltr`` memory index folds what it is behind on when the
    engine opens; on a full disk that fold failed, the file was deleted and rebuilt, failed again, and the
    raw ``sqlite3.OperationalError`` ended ``Engine.open`` (so ``xmodal search`` crashed). Now the memory
    index is kept in memory for that process, and reads work."""
    from xmodal.ltr.memory_state import FILE, MemoryState

    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        acked = engine.add(text_items(400)).added
    (index / "ltr" / FILE).unlink()  # behind on every item: folded when the engine opens
    real = MemoryState._create

    def on_a_full_disk(self: MemoryState, target: Path | str) -> object:
        db = real(self, target)
        if str(target) != ":memory:":  # its file may not grow: SQLITE_FULL, as on a full disk
            db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        return db

    monkeypatch.setattr(MemoryState, "_create", on_a_full_disk)
    with Engine.open(index) as engine:
        assert_searchable(engine, acked)
        found = engine.search(Query(text="item 7 black", k=5)).hits.ids.tolist()  # the default (learned) mode
        assert "t7" in found
    monkeypatch.undo()
    with Engine.open(index) as engine:  # room again: the memory index is folded into its file
        assert engine.search(Query(text="item 7 black", k=5)).hits.ids.tolist()[0] == "t7"
    assert xmodal(index, "check").returncode == 0


def test_a_checkpoint_with_no_room_is_disk_full_even_after_its_cleanup(tmp_path: Path) -> None:
    """Found by ``benchmarks/bench_faults.py``: numpy reports a short write as an ``OSError`` without an errno
    ("N requested and M written"), which counts as no space only while the disk is (nearly) full; the
    checkpoint removed its partial folder first, so with more than 1 MiB freed by that the caller got the bare
    ``OSError`` (and ``Engine.close`` let it out, leaving the store open)."""
    with mounted(tmp_path / "disk", "16m") as disk:
        engine = Engine.open(disk / "idx", encoder=HashingEncoder(), index="exact")
        acked = engine.add(text_items(2000)).added  # 3 MB of vectors, not checkpointed yet
        filler = fill(disk)
        os.truncate(filler, filler.stat().st_size - (3 << 19))  # 1.5 MiB left: the vectors file stops halfway
        with pytest.raises(DiskFull, match="free space on the disk"):
            engine.checkpoint()
        assert leftovers(disk / "idx") == [] and not (disk / "idx" / "index.tmp").exists()
        filler.unlink()
        engine.close()
        with Engine.open(disk / "idx") as reopened:
            assert reopened.info()["vectors"] == {"text": 2000} and all(x in reopened for x in acked)
            assert reopened.search(Query(text="item 1999 black", k=1, mode="dense")).hits.ids.tolist() == ["t1999"]
        assert xmodal(disk / "idx", "check").returncode == 0
