"""Issue 13, defects 1 and 7: no write lost to search when several processes write one index folder, a
damaged store is a clear error naming the recovery, and ``xmodal check`` finds and repairs a store/index
mismatch. Real processes (the CLI in subprocesses), real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xmodal import Engine, Item, Query, StorageError
from xmodal.encoders import HashingEncoder
from xmodal.store import sqlite as sqlite_store

FAST = ["--encoder", "hashing", "--index-kind", "exact"]


def xmodal(index: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", str(index), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )


def catalog(path: Path, prefix: str, n: int) -> Path:
    """A JSON Lines catalog of ``n`` items whose ``batch`` attribute is ``prefix``."""
    lines = [
        json.dumps({"id": f"{prefix}{i}", "title": f"lamp {i}", "attributes": {"batch": prefix}}) for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_all_searchable(index: Path, batches: dict[str, int]) -> None:
    """Every item of each batch comes back from a search filtered to its batch; vectors = items."""
    with Engine.open(index) as engine:
        for batch, n in batches.items():
            found = engine.search(Query(text="lamp", k=n + 5, filters={"batch": batch}, mode="dense"))
            assert sorted(found.hits.ids.tolist()) == sorted(f"{batch}{i}" for i in range(n)), batch
        info = engine.info()
        assert info["vectors"] == {"text": info["items"]} and info["items"] == sum(batches.values())
    assert xmodal(index, "check").returncode == 0


def test_a_checkpoint_records_only_what_this_process_applied(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    engine = Engine.open(index, encoder=HashingEncoder(), index="exact")
    engine.add([Item.create(f"old{i}", title=f"lamp {i}", attributes={"batch": "old"}) for i in range(20)])
    engine.checkpoint()
    done = xmodal(index, *FAST, "add", "-q", str(catalog(tmp_path / "new.jsonl", "new", 150)))
    assert done.returncode == 0, done.stderr
    engine.add([Item.create("late0", title="lamp 0", attributes={"batch": "late"})])  # another write here
    engine.close()  # checkpoints; the CLI's 150 were never read here
    state = json.loads((index / "index" / "state.json").read_text())
    assert state["seq"] <= 171
    assert_all_searchable(index, {"old": 20, "new": 150, "late": 1})


def test_two_concurrent_adds_into_one_folder_are_all_searchable(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert xmodal(index, *FAST, "add", "-q", str(catalog(tmp_path / "a.jsonl", "a", 10))).returncode == 0
    files = [catalog(tmp_path / f"{p}.jsonl", p, 300) for p in ("b", "c", "d")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xmodal.cli", "--index", str(index), "add", "-q", str(f)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert_all_searchable(index, {"a": 10, "b": 300, "c": 300, "d": 300})


CHECKPOINTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from xmodal import Item
    from xmodal.backends.base import BackendContext
    from xmodal.backends.local import LocalBackend
    from xmodal.store.sqlite import StoredItem

    backend = LocalBackend.open(BackendContext(Path(sys.argv[1]), 8, "exact", {}, None))
    rng = np.random.default_rng(int(sys.argv[2]))
    for i in range(60):
        vector = rng.standard_normal(8).astype(np.float32)
        backend.upsert([StoredItem(i, Item.create(f"x{i}", title="x"), {"text": vector / np.linalg.norm(vector)})])
        backend.checkpoint(i + 1)
    """
)


def test_checkpoints_written_by_several_processes_at_once_do_not_tear(tmp_path: Path) -> None:
    folder = tmp_path / "idx" / "index"
    folder.parent.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHECKPOINTER, str(folder), str(seed)], stderr=subprocess.PIPE, text=True
        )
        for seed in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # before the lock: FileExistsError, FileNotFoundError, ENOTEMPTY
    from xmodal.backends.base import BackendContext
    from xmodal.backends.local import LocalBackend

    loaded = LocalBackend.open(BackendContext(folder, 8, "exact", {}, None))
    assert loaded.saved_seq == 60 and loaded.count("text") == 60
    assert not list(folder.parent.glob("index.*"))  # no temporary or old folder left behind


# -- xmodal check ------------------------------------------------------------------------------------
def lying_checkpoint(tmp_path: Path) -> Path:
    """An index whose vector checkpoint claims 50 changes but holds 30 (what the old checkpoint bug left)."""
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"a{i}", title=f"lamp {i}", attributes={"batch": "a"}) for i in range(30)])
    shutil.copytree(index / "index", tmp_path / "saved")
    with Engine.open(index) as engine:
        engine.add([Item.create(f"b{i}", title=f"lamp {i}", attributes={"batch": "b"}) for i in range(20)])
    put_back(index, tmp_path / "saved", seq=50)
    return index


def put_back(index: Path, saved: Path, *, seq: int) -> None:
    """Replace the vector checkpoint by an older copy that claims to reflect the store up to ``seq``."""
    shutil.rmtree(index / "index")
    shutil.copytree(saved, index / "index")
    state = json.loads((index / "index" / "state.json").read_text())
    (index / "index" / "state.json").write_text(json.dumps({**state, "seq": seq}))


def test_check_finds_a_store_index_mismatch_and_repair_fixes_it(tmp_path: Path) -> None:
    index = lying_checkpoint(tmp_path)
    found = xmodal(index, "check", "--json")
    assert found.returncode == 1, found.stdout + found.stderr
    report = json.loads(found.stdout)
    assert not report["ok"] and "check --repair" in report["fix"]
    text = next(r for r in report["rows"] if r["name"] == "text vectors")
    assert (text["store"], text["derived"], text["missing"]) == (50, 30, 20)
    assert text["sample_missing"] == list(range(31, 41))
    assert any("text vectors: the store has 50, the index 30" in p for p in report["problems"])

    repaired = xmodal(index, "check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "repaired: rebuilt from the store: text vectors" in repaired.stdout
    assert_all_searchable(index, {"a": 30, "b": 20})


def test_repair_removes_vectors_the_store_does_not_hold(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"a{i}", title=f"lamp {i}", attributes={"batch": "a"}) for i in range(10)])
    shutil.copytree(index / "index", tmp_path / "saved")
    with Engine.open(index) as engine:
        engine.delete(["a0", "a1"])
    put_back(index, tmp_path / "saved", seq=12)  # claims the deletes, still holds both rows
    with Engine.open(index) as engine:
        from xmodal.check import check, repair

        before = check(engine)
        assert [(c.name, c.extra, c.sample_extra) for c in before.rows if not c.ok] == [("text vectors", 2, [1, 2])]
        after = repair(engine)
        assert after.ok and after.repaired
        assert engine.info()["vectors"] == {"text": 8}


# -- a damaged store -----------------------------------------------------------------------------
def damaged_store(tmp_path: Path) -> Path:
    """A real index whose store's last page is overwritten."""
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"a{i}", title=f"brass lamp {i} " * 20) for i in range(300)])
    store = index / "store.sqlite"
    with store.open("r+b") as f:
        f.seek(store.stat().st_size - 4096)
        f.write(bytes(range(256)) * 16)
    return index


def test_a_damaged_store_is_a_clear_error_when_it_opens(tmp_path: Path) -> None:
    index = damaged_store(tmp_path)
    with pytest.raises(StorageError, match="damaged") as raised:
        Engine.open(index)
    message = str(raised.value)
    assert str(index / "store.sqlite") in message and "backup" in message and "check --full" in message


def test_a_damaged_large_store_fails_its_first_write_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = damaged_store(tmp_path)
    monkeypatch.setattr(sqlite_store, "QUICK_CHECK_BYTES", 0)  # as a store too large to check on open
    with pytest.raises(StorageError, match="damaged.*backup"):
        with Engine.open(index) as engine:
            engine.add([Item.create("new", title="new lamp")])


def test_the_cli_names_the_fix_for_a_damaged_store(tmp_path: Path) -> None:
    index = damaged_store(tmp_path)
    extra = catalog(tmp_path / "x.jsonl", "x", 2)
    for args in (("add", str(extra)), ("search", "lamp"), ("info",)):
        done = xmodal(index, *args)
        assert done.returncode == 1, args
        assert "Traceback" not in done.stderr and "damaged" in done.stderr and "restore" in done.stderr, done.stderr
    checked = xmodal(index, "check", "--full", "--json")
    assert checked.returncode == 1
    report = json.loads(checked.stdout)
    assert report["store"] and not report["ok"] and "backup" in report["fix"]


def test_check_says_an_unreadable_store_is_unreadable_not_damaged(tmp_path: Path) -> None:
    from xmodal.store.health import store_file_problems

    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("a", title="copper kettle")])
    for part in index.glob("store.sqlite*"):
        part.unlink()
    (index / "store.sqlite").mkdir()  # cannot be opened, and nothing in it is damaged
    with pytest.raises(StorageError, match="cannot be read.*not found damaged"):
        store_file_problems(index / "store.sqlite")  # before: reported as damage, so `check` said "restore a backup"


def test_a_store_restored_from_a_backup_under_newer_checkpoints_opens_sound(tmp_path: Path) -> None:
    """Found by ``benchmarks/bench_faults.py``: the recovery of a damaged store is to restore a backup, but the
    vector checkpoint beside it may hold items added after that backup (rows the restored store does not
    have). Opening trusted it: a search returned those rows and died with a ``KeyError``, and ``check``
    found rows "not in the store". Now a checkpoint newer than the store is rebuilt from it when it opens."""
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"a{i}", title=f"lamp {i}", attributes={"batch": "a"}) for i in range(30)])
    shutil.copy2(index / "store.sqlite", tmp_path / "backup.sqlite")
    with Engine.open(index) as engine:
        engine.add([Item.create(f"b{i}", title=f"lamp {i}", attributes={"batch": "b"}) for i in range(20)])
    shutil.copy2(tmp_path / "backup.sqlite", index / "store.sqlite")  # the recovery: the backup put back
    with Engine.open(index) as engine:
        found = engine.search(Query(text="lamp 3", k=100, mode="dense")).hits.ids.tolist()
        assert sorted(found) == sorted(f"a{i}" for i in range(30))
        engine.add([Item.create(f"c{i}", title=f"lamp {i}", attributes={"batch": "c"}) for i in range(5)])
    assert_all_searchable(index, {"a": 30, "c": 5})
