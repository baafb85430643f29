"""Issue 13, the short fault-injection suite: after each fault, every acknowledged write is *searchable* (a
filtered search finds it, vector counts equal item counts) and ``xmodal check`` reports the index sound.

- kill -9 at seeded random moments of concurrent writes from several processes (each records the ids of a
  batch once ``Engine.add`` has returned);
- torn checkpoint files (a file of the vector checkpoint ``index/`` truncated, or zero-filled from its middle
  with its size kept);
- a write failure injected in the store's write path in the middle of a batch (the whole batch is refused,
  nothing acknowledged is lost); the full disk has its own tests (``test_full_disk.py``).

``check`` is ok after each without ``--repair``. Real processes and files; seeded; about 30 s in all. The long,
randomized version (several fault kinds, many rounds, exact-title searches too) is ``benchmarks/bench_faults.py``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_integrity import xmodal
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.store.sqlite import SQLiteStore

WRITERS = 3
ROUNDS = 3

WRITER = textwrap.dedent(
    """
    import sys
    from xmodal import Engine, Item

    index, name, acked = sys.argv[1], sys.argv[2], sys.argv[3]
    with Engine.open(index) as engine, open(acked, "a") as log:
        for batch in range(10_000):
            ids = [f"{name}-{batch}-{i}" for i in range(5)]
            engine.add([Item.create(x, title=f"lamp {x}", attributes={"writer": name}) for x in ids])
            log.write("\\n".join(ids) + "\\n")  # acknowledged: add returned
            log.flush()
    """
)


def assert_sound(index: Path, acked: dict[str, list[str]]) -> None:
    """Every acknowledged id comes back from a search filtered to its writer; vectors = items; check ok."""
    with Engine.open(index) as engine:
        for writer, ids in acked.items():
            k = max(len(ids) + 50, 10)
            found = set(engine.search(Query(text="lamp", k=k, filters={"writer": writer}, mode="dense")).hits.ids)
            lost = [x for x in ids if x not in found]
            assert not lost, f"{len(lost)} acknowledged writes of {writer} not searchable, e.g. {lost[:3]}"
        info = engine.info()
        assert info["vectors"] == {"text": info["items"]}
    report = xmodal(index, "check", "--json")
    assert report.returncode == 0 and json.loads(report.stdout)["ok"], report.stdout + report.stderr


def read_acked(folder: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.acked")):
        out[path.stem] = [line for line in path.read_text().splitlines() if line]
    return out


def test_kill_9_at_random_moments_of_concurrent_writers_loses_nothing_acknowledged(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    Engine.open(index, encoder=HashingEncoder(), index="exact").close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(13)
    for _ in range(ROUNDS):
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(index), f"w{n}", str(tmp_path / f"w{n}.acked")],
                stderr=subprocess.DEVNULL,
            )
            for n in range(WRITERS)
        ]
        before = {f"w{n}": len(read_acked(tmp_path).get(f"w{n}", [])) for n in range(WRITERS)}
        deadline = time.monotonic() + 60
        while not progressed(read_acked(tmp_path), before):  # each writer has acknowledged in this round
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "writers stalled"
            time.sleep(0.05)
        for proc in rng.sample(procs, len(procs)):  # each at its own random moment
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(10)
        acked = read_acked(tmp_path)
        assert all(acked.values())
        assert_sound(index, acked)


def progressed(acked: dict[str, list[str]], before: dict[str, int]) -> bool:
    """Each writer acknowledged a batch since ``before`` and all together at least 40 writes each (on a loaded
    machine one writer can be slow to start: killing before it acknowledged anything proves nothing about it)."""
    gained = [len(acked.get(name, [])) - count for name, count in before.items()]
    return min(gained) >= 5 and sum(gained) >= 40 * len(before)


def built(tmp_path: Path, n: int = 60) -> tuple[Path, dict[str, list[str]]]:
    index = tmp_path / "idx"
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        ids = engine.add(Item.create(f"a{i}", title=f"lamp {i}", attributes={"writer": "a"}) for i in range(n)).added
    return index, {"a": ids}


@pytest.mark.parametrize("torn", ["text/vectors.npy", "text/labels.npy", "state.json"])
def test_a_torn_checkpoint_file_is_rebuilt_from_the_store(tmp_path: Path, torn: str) -> None:
    index, acked = built(tmp_path)
    path = index / "index" / torn
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    assert_sound(index, acked)


@pytest.mark.parametrize("torn", ["text/vectors.npy", "text/labels.npy"])
def test_a_checkpoint_file_whose_tail_never_reached_the_disk_is_rebuilt(tmp_path: Path, torn: str) -> None:
    """Found by ``benchmarks/bench_faults.py``: a file of the checkpoint zero-filled from its middle to its end,
    its size kept (what a crash can leave where a file's last blocks were never written), was loaded as it
    was: zeroed labels made the index hold row 0 (a search died with ``KeyError: 0``), zeroed vectors made
    the last items unfindable by what they say."""
    index, acked = built(tmp_path)
    path = index / "index" / torn
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(bytes(size - size // 2))
    with Engine.open(index) as engine:
        for i in (0, 30, 59):
            assert engine.search(Query(text=f"lamp {i}", k=3, mode="dense")).hits.ids.tolist()[0] == f"a{i}"
    assert_sound(index, acked)


def test_a_write_failure_mid_batch_refuses_the_batch_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, acked = built(tmp_path)
    real = SQLiteStore._put_one
    calls = {"n": 0}

    def failing(self: SQLiteStore, item: Item, vectors: object) -> int:
        calls["n"] += 1
        if calls["n"] == 7:  # in the middle of the batch, inside its transaction
            raise OSError(5, "Input/output error (injected)")
        return real(self, item, vectors)  # type: ignore[arg-type]

    with Engine.open(index) as engine:
        monkeypatch.setattr(SQLiteStore, "_put_one", failing)
        with pytest.raises(OSError, match="injected"):
            engine.add(Item.create(f"b{i}", title=f"lamp b{i}", attributes={"writer": "b"}) for i in range(20))
        monkeypatch.setattr(SQLiteStore, "_put_one", real)
        assert not any(f"b{i}" in engine for i in range(20))  # one transaction: none of the batch is kept
        acked["c"] = engine.add(
            Item.create(f"c{i}", title=f"lamp c{i}", attributes={"writer": "c"}) for i in range(10)
        ).added
    assert_sound(index, acked)
