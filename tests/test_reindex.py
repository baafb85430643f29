"""``xmodal reindex``: resumable build beside the old vectors, writes during it, atomic switch under kill -9,
abort, stale markers, eval of the next vectors, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import ConfigError, Engine, Item
from xmodal.cli import main
from xmodal.encoders import Content, HashingEncoder, create_encoder
from xmodal.migration import Reindex
from xmodal.migration.faults import FAULT_ENV
from xmodal.store.sqlite import SQLiteStore

SRC = str(Path(__file__).resolve().parents[1] / "src")
OLD, NEW = {"dim": 32}, {"dim": 64, "seed": 3}
WORDS = ["red apple", "blue car", "green tree", "black cat", "white boat"]


def items(n: int, prefix: str = "i") -> list[Item]:
    return [Item.create(f"{prefix}{i}", title=f"{WORDS[i % 5]} number {i}", attributes={"n": i}) for i in range(n)]


def make_index(path: Path, n: int = 300) -> Path:
    with Engine.open(path, encoder="hashing", encoder_options=OLD, extensions=["ltr", "genret"]) as engine:
        engine.add(items(n))
    return path


def stored_vectors(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The index's encoder config and every stored vector by item id, read straight from the store."""
    store = SQLiteStore(path / "store.sqlite")
    try:
        return store.get_meta("settings")["encoder"], {s.item.id: s.vectors for s in store.iter_all()}
    finally:
        store.close()


def assert_one_encoder(path: Path) -> int:
    """Every stored vector is exactly what the index's recorded encoder makes of its item: never a mix."""
    config, vectors = stored_vectors(path)
    enc = create_encoder("hashing", **{k: v for k, v in config.items() if k != "name"})
    with Engine.open(path) as engine:
        assert engine.dim == config["dim"]
        for item_id, by_kind in vectors.items():
            expected = enc.encode_documents([Content(text=engine.get(item_id).document_text)])[0]
            assert set(by_kind) == {"text"}
            np.testing.assert_allclose(by_kind["text"], expected, atol=1e-5)
        query = enc.encode_queries([Content(text="blue car")])[0]
        best = max(float(by_kind["text"] @ query) for by_kind in vectors.values())
        hits = engine.search_vector(query, k=3)  # the served vectors are the stored ones
        assert abs(float(hits.scores[0]) - best) < 1e-4
        assert len(engine) == len(vectors)
    return int(config["dim"])


def test_resumes_where_it_stopped_and_follows_writes(tmp_path: Path) -> None:
    path = make_index(tmp_path / "idx")
    with Reindex(path) as job:
        job.start("hashing", NEW)
        status = job.run(stop=lambda: True, batch=64)  # stopped after one batch
        assert (status["state"], status["done"], status["total"]) == ("building", 64, 300)
    with Engine.open(path) as engine:  # writes while it is under way: an update below the cursor, a delete, an add
        engine.add([Item.create("i1", title="white boat renamed"), Item.create("late", title="green tree late")])
        engine.delete(["i2", "i200"])
        assert engine.info()["reindex"]["done"] == 64
    encoded: list[int] = []
    with Reindex(path) as job:  # a new process resumes: only the rest is encoded
        status = job.start("hashing", NEW)
        assert status["done"] == 64
        status = job.run(progress=encoded.append, batch=64)
        assert status["state"] == "ready" and status["changes_behind"] == 0
        assert sum(encoded) == 300 - 64  # the 236 rows above the cursor (the late add among them, i200 gone)
        job.switch()
    assert assert_one_encoder(path) == 64
    with Engine.open(path) as engine:
        assert engine.get("i1").title == "white boat renamed" and "i2" not in engine and "late" in engine
        assert engine.search("white boat renamed", k=1, mode="dense").items[0].id == "i1"
    assert not (path / "reindex").exists()


def test_a_killed_run_continues_where_it_stopped(tmp_path: Path) -> None:
    path = make_index(tmp_path / "idx", 120)
    command = [sys.executable, "-m", "xmodal.cli", "--index", str(path), "reindex", "--batch", "50", "-q"]
    env = {**os.environ, "PYTHONPATH": SRC, FAULT_ENV: "batch"}
    done = subprocess.run([*command, "--encoder", "hashing", "--encoder-option", "dim=64"], env=env, timeout=120)
    assert done.returncode == -9  # killed right after its first batch was committed
    with Reindex(path) as job:
        assert (job.status()["state"], job.status()["done"]) == ("building", 50)
    env.pop(FAULT_ENV)
    assert subprocess.run(command, env=env, timeout=120).returncode == 0  # resumed: no --encoder needed
    with Reindex(path) as job:
        status = job.status()
        assert (status["state"], status["done"], status["total"]) == ("ready", 120, 120)
        job.switch()
    assert assert_one_encoder(path) == 64


def test_searches_are_served_while_it_runs(tmp_path: Path) -> None:
    path = make_index(tmp_path / "idx", 600)
    errors: list[BaseException] = []
    served = 0
    with Engine.open(path) as engine, Reindex(path) as job:
        job.start("hashing", NEW)
        worker = threading.Thread(target=lambda: job.run(batch=32))
        worker.start()
        while worker.is_alive() or served < 20:
            try:
                hits = engine.search("green tree", k=5, mode="dense")
                assert hits.items[0].title.startswith("green tree")
                served += 1
            except BaseException as exc:  # noqa: BLE001 - counted, then asserted
                errors.append(exc)
        worker.join()
        assert job.status()["state"] == "ready"
        assert engine.dim == 32  # the old vectors serve until the switch
    assert not errors and served >= 20


@pytest.mark.parametrize("point", ["prepared", "locked", "deleted", "copied", "written", "committed"])
def test_kill_9_during_switch_leaves_one_encoder(tmp_path: Path, point: str) -> None:
    path = make_index(tmp_path / "idx", 200)
    with Reindex(path) as job:
        job.start("hashing", NEW)
        job.run()
    with Engine.open(path) as engine:  # a change the switch must replay itself
        engine.add([Item.create("fresh", title="black cat fresh")])
    env = {**os.environ, "PYTHONPATH": SRC, FAULT_ENV: point}
    done = subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", str(path), "reindex", "--switch"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr.decode()
    dim = assert_one_encoder(path)
    assert dim == (64 if point == "committed" else 32)
    with Reindex(path) as job:  # an interrupted switch runs again; a committed one is only cleaned up
        if point == "committed":
            assert job.status()["state"] == "none"
        else:
            job.switch()
    assert assert_one_encoder(path) == 64
    assert not (path / "reindex").exists()


def test_abort_drops_the_new_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_index(tmp_path / "idx", 50)
    args = ["--index", str(path), "reindex"]
    assert main([*args, "--encoder", "hashing", "--encoder-option", "dim=64", "-q"]) == 0
    assert (path / "reindex").is_dir()
    assert main([*args, "--abort"]) == 0
    assert not (path / "reindex").exists()
    assert main([*args, "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["state"] == "none"
    assert assert_one_encoder(path) == 32


def test_switch_marks_derived_structures_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_index(tmp_path / "idx", 40)
    args = ["--index", str(path)]
    assert main([*args, "reindex", "--encoder", "hashing", "--encoder-option", "dim=64", "-q"]) == 0
    assert main([*args, "reindex", "--switch"]) == 0
    with Engine.open(path) as engine:
        assert set(engine.info()["stale"]) == {"genret", "ltr"}
    capsys.readouterr()
    main([*args, "genret", "status"])
    assert "STALE" in capsys.readouterr().out
    assert main([*args, "info"]) == 0
    out = capsys.readouterr().out
    assert "stale       genret" in out and "xmodal ltr train" in out


def test_eval_scores_current_and_next(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_index(tmp_path / "idx", 50)
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "blue car number 1", "relevant": ["i1"]}) + "\n")
    args = ["--index", str(path)]
    assert main([*args, "eval", str(queries), "--encoder", "next"]) == 2  # nothing under way: says how to start
    assert "reindex --encoder" in capsys.readouterr().err
    assert main([*args, "reindex", "--encoder", "hashing", "--encoder-option", "dim=64", "-q"]) == 0
    capsys.readouterr()
    assert main([*args, "eval", str(queries), "--encoder", "both", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["current"]["queries"] == report["next"]["queries"] == 1
    assert report["next"]["recall@1"] == 1.0


def test_a_process_on_the_old_encoder_cannot_write_after_the_switch(tmp_path: Path) -> None:
    path = make_index(tmp_path / "idx", 30)
    with Engine.open(path) as old:
        with Reindex(path) as job:
            job.start("hashing", NEW)
            job.run()
            job.switch()
        assert old.search("red apple", k=1, mode="dense").items  # it still serves its own vectors
        with pytest.raises(ConfigError, match="restart"):
            old.add([Item.create("x", title="black cat")])
    assert assert_one_encoder(path) == 64


class WrongDim(HashingEncoder):
    """Declares one dimension and makes another."""

    def encode_documents(self, batch: Any) -> Any:
        return np.zeros((len(batch), self.dim + 1), np.float32) + 0.1


def test_bad_input_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_index(tmp_path / "idx", 20)
    with Reindex(path) as job:
        with pytest.raises(ConfigError, match="nothing to reindex"):
            job.start("hashing", OLD)
        with pytest.raises(ConfigError, match="dim option"):
            job.start(WrongDim(dim=16))
        with pytest.raises(ConfigError, match="reindex --encoder"):
            job.switch()
        job.start("hashing", NEW)
        job.run(stop=lambda: True, batch=5)
        with pytest.raises(ConfigError, match="run `xmodal reindex` to finish"):
            job.switch()
        with pytest.raises(ConfigError, match="--abort"):
            job.start("hashing", {"dim": 48})
    args = ["--index", str(path), "reindex"]
    assert main([*args, "--encoder", "no-such-encoder"]) == 1
    assert "unknown encoder 'no-such-encoder'" in capsys.readouterr().err
    assert main([*args, "--switch"]) == 1
    assert "xmodal reindex" in capsys.readouterr().err
    assert main([*args, "--encoder", "hashing", "--switch"]) == 2
    assert assert_one_encoder(path) == 32


def test_switch_to_the_offline_encoder(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = make_index(tmp_path / "idx", 12)
    with Reindex(path) as job:
        job.start("offline")
        job.run()
        job.switch()
    with Engine.open(path) as engine:
        assert engine.encoder.name == "offline" and engine.dim == 384
        assert engine.search("an automobile", k=1, mode="dense").items[0].title.startswith("blue car")
