"""Issue 13, found by ``benchmarks/bench_faults.py``: a disk that fails a write (``fsync`` answering ``EIO``)
is a clear :class:`StorageError` naming the file and what to do, from ``Engine.add`` / ``delete`` and from
the CLI (one line, exit 1), not a raw ``sqlite3.OperationalError: disk I/O error`` (a CLI traceback) or a
bare ``OSError`` with no file named; nothing of the failed write is acknowledged, and once the disk answers
again writes work without reopening.

The SQLite case fails ``fsync`` for real through an ``LD_PRELOAD`` shim compiled here (skipped without a C
compiler); the media case injects the ``EIO`` at ``os.fsync`` as the full-disk tests inject ``ENOSPC``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_full_disk import png
from tests.test_integrity import catalog, xmodal
from xmodal import Engine, Item, StorageError
from xmodal.encoders import HashingEncoder

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
static int on(void) { const char *p = getenv("FAULT_FSYNC"); struct stat st; return p && stat(p, &st) == 0; }
int fsync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fsync");
    if (on()) { errno = EIO; return -1; } return real(fd); }
int fdatasync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
    if (on()) { errno = EIO; return -1; } return real(fd); }
"""

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from xmodal import Engine, Item

    index, control = sys.argv[1], Path(sys.argv[2])
    out = {}
    with Engine.open(index) as engine:
        control.touch()  # every fsync fails from here
        for name, call in (
            ("add", lambda: engine.add([Item.create("b1", title="lamp b1")])),
            ("delete", lambda: engine.delete(["a0"])),
        ):
            try:
                call()
                out[name] = "acknowledged"
            except Exception as exc:
                out[name] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        control.unlink()  # the disk answers again
        engine.add([Item.create("c1", title="lamp c1")])
        out["present"] = sorted(x for x in ("a0", "b1", "c1") if x in engine)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or sys.platform != "linux":
        pytest.skip("no C compiler to build the fsync shim")
    folder = tmp_path_factory.mktemp("shim")
    (folder / "shim.c").write_text(SHIM)
    library = folder / "shim.so"
    done = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(folder / "shim.c"), "-ldl"])
    if done.returncode != 0:
        pytest.skip("the fsync shim does not build here")
    return library


def test_a_failed_fsync_in_the_store_is_a_clear_error_and_keeps_nothing(tmp_path: Path, shim: Path) -> None:
    index, control = tmp_path / "idx", tmp_path / "fsync-fails"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create(f"a{i}", title=f"lamp {i}") for i in range(5)])
    env = {**os.environ, "LD_PRELOAD": str(shim), "FAULT_FSYNC": str(control), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(index), str(control)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for name in ("add", "delete"):  # before: "sqlite3.OperationalError: disk I/O error"
        assert out[name].startswith("xmodal.errors.StorageError: "), out[name]
        assert str(index / "store.sqlite") in out[name] and "I/O error" in out[name] and "retry" in out[name]
    assert out["present"] == ["a0", "c1"]  # the failed add and delete kept nothing; the next write works

    control.touch()
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "xmodal.cli",
            "--index",
            str(index),
            "add",
            "-q",
            str(catalog(tmp_path / "x.jsonl", "x", 3)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    control.unlink()
    assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr
    assert "I/O error" in added.stderr and str(index) in added.stderr
    assert xmodal(index, "check").returncode == 0


def test_a_failed_fsync_of_a_media_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        with monkeypatch.context() as patch:
            patch.setattr("xmodal.store.files.os.fsync", failing)  # the media file is written by write_bytes
            with pytest.raises(StorageError, match="media") as caught:  # before: a bare OSError, no file named
                engine.add([Item.create("img", title="item img", image=png(4))])
        assert str(tmp_path / "idx" / "media") in str(caught.value) and "retry" in str(caught.value)
        assert "img" not in engine
        assert not list((tmp_path / "idx").rglob("*.tmp"))
        engine.add([Item.create("img", title="item img", image=png(4))])
        assert "img" in engine


def test_close_closes_every_part_when_a_checkpoint_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    engine = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    engine.add([Item.create("a", title="copper kettle")])

    def broken(self: object, seq: int) -> None:
        raise StorageError("checkpoint: the disk answered EIO; check the disk, then retry")

    monkeypatch.setattr(type(engine.backend), "checkpoint", broken)
    with pytest.raises(StorageError, match="EIO"):
        engine.close()  # the failure is reported ...
    with pytest.raises(sqlite3.ProgrammingError):  # ... and the store is closed anyway (before: left open)
        engine.store.count()
    monkeypatch.undo()
    with Engine.open(tmp_path / "idx") as again:  # nothing was lost: the change log is replayed
        assert "a" in again


def test_rest_answers_a_storage_error_with_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    import httpx

    from xmodal.serve import ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("a", title="copper kettle")])

        def failing(*args: object, **kwargs: object) -> object:
            raise StorageError(f"{tmp_path}/store.sqlite: the store is damaged; restore it from a backup")

        monkeypatch.setattr(engine, "search", failing)
        with serve_in_thread(create_app(engine, ServeConfig(log_requests=False))) as url:
            answer = httpx.post(f"{url}/search", json={"text": "kettle"})
    assert answer.status_code == 500  # before: "internal error", the message (file and fix) hidden
    body = answer.json()
    assert "store is damaged" in body["error"] and "restore it from a backup" in body["error"]
    assert body["request_id"] and "operator" in body["fix"]
