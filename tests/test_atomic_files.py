"""Whole-file writes from several threads at once: each lands whole, and none fails on another's temporary file
(a server's save of a learned state and its listener's load of that save record into one folder at once; two adds
of one image at once write one content-addressed media file)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from xmodal.store.files import write_bytes, write_json
from xmodal.store.postgres_state import MARKER, _held, _hold


def _at_once(work: Callable[[int], None], threads: int = 8) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:  # collected: the test names what failed
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def test_writers_of_one_file_never_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"

    def write(i: int) -> None:
        for n in range(200):
            write_json(target, {"writer": i, "n": n, "pad": "x" * 4096})

    assert _at_once(write) == []
    assert json.loads(target.read_text())["n"] == 199  # whole: the last write of some writer
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    write_bytes(target, b"old")

    try:
        write_bytes(target, "not bytes")  # type: ignore[arg-type]
    except TypeError:
        pass
    else:
        raise AssertionError("a str was written as bytes")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_the_shared_state_marker_keeps_every_concurrent_record(tmp_path: Path) -> None:
    def hold(i: int) -> None:
        for version in range(1, 51):
            _hold(tmp_path, f"state{i}", version)

    assert _at_once(hold) == []
    assert _held(tmp_path) == {f"state{i}": 50 for i in range(8)}  # no record lost to another's rewrite
    assert [p.name for p in tmp_path.iterdir()] == [MARKER]


def test_two_adds_of_one_image_at_once_both_store_it(tmp_path: Path) -> None:
    from xmodal.media import MediaStore

    store = MediaStore(tmp_path)
    data = bytes(range(256)) * 4096  # 1 MiB: long enough for the writes to overlap
    refs: list[str] = []
    assert _at_once(lambda i: refs.append(store.put(data, ".bin"))) == []  # content-addressed: one file, written whole
    assert len(set(refs)) == 1 and store.path(refs[0]).read_bytes() == data
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_file_written_whole_has_the_mode_any_new_file_has(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")  # open()'s mode: 0o666 less the umask
    write_bytes(tmp_path / "whole", b"x")
    assert (tmp_path / "whole").stat().st_mode == (tmp_path / "plain").stat().st_mode  # not mkstemp's 0o600
