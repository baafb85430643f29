"""Distributed add on a local Ray cluster (one per session, on 127.0.0.1 only): the same items as a
one-process add, resumable after a failure, a dying worker retried with a bound."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine
from xmodal.cli import main
from xmodal.ingest.catalog import add_catalogs
from xmodal.ingest.journal import FOLDER

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "tests.ray_encoders:FaultyEncoder"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A two-CPU Ray cluster on 127.0.0.1 for the session (its workers import xmodal and the tests)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'xmodal[ray]'")
    from xmodal.ingest.ray_cluster import start_local

    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), path) if p)
    start_local(ray, num_cpus=2)
    yield ray
    ray.shutdown()
    os.environ["PYTHONPATH"] = path


def _open(path: Path) -> Engine:
    return Engine.open(path, encoder=ENCODER, dim=32, index="exact", extensions=[])


def _catalogs(folder: Path, n: int = 60) -> list[Path]:
    """The same kind of records as JSON Lines, CSV and Parquet, with one bad line in each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    rows = [{"id": f"j{i}", "title": f"jsonl item {i}", "attributes": {"n": i}} for i in range(n)]
    jsonl = folder / "a.jsonl"
    jsonl.write_text(
        "\n".join([*map(json.dumps, rows[:10]), '{"id": "bad", "titel": "x"}', *map(json.dumps, rows[10:])])
    )
    csv_path = folder / "b.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "attributes.n"])
        writer.writerows([[f"c{i}", f"csv item {i}", i] for i in range(n // 2)] + [["j3", "repeated id", 1]])
    parquet = folder / "c.parquet"
    table = pa.table(
        {"id": [f"p{i}" for i in range(n // 2)] + [None], "text": [f"parquet {i}" for i in range(n // 2)] + ["no id"]}
    )
    pq.write_table(table, parquet)
    return [jsonl, csv_path, parquet]


def _vectors(engine: Engine) -> dict[str, np.ndarray]:
    return {s.item.id: s.vectors["text"] for s in engine.store.iter_all()}


def _ray_processes() -> list[Any]:
    """This process's descendants that are Ray's: the GCS, the raylet, its agents and monitors, the workers
    (other session fixtures' servers, e.g. Milvus, are children of this process too, and are not Ray's)."""
    import psutil

    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            name, command = proc.name(), " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if name in ("gcs_server", "raylet") or command.startswith("ray::") or "site-packages/ray/" in command:
            found.append(proc)
    return found


def test_nothing_listens_beyond_loopback(ray_cluster: Any) -> None:
    import psutil

    listening = []
    for proc in _ray_processes():
        try:
            sockets = proc.net_connections(kind="inet")
            listening += [(proc.name(), c.laddr) for c in sockets if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    assert len(listening) >= 3  # the GCS, the raylet and the workers' servers were all found
    for name, addr in listening:
        ip = ipaddress.ip_address(addr.ip)
        mapped = getattr(ip, "ipv4_mapped", None)
        assert (mapped or ip).is_loopback, f"the Ray process {name} listens on {addr.ip}:{addr.port}"


def test_same_items_as_one_process_add(ray_cluster: Any, tmp_path: Path) -> None:
    from xmodal.ingest.ray_ingest import ray_add

    paths = _catalogs(tmp_path / "cat")
    with _open(tmp_path / "single") as single:
        expected = add_catalogs(single, paths)
        want = _vectors(single)
        top = [item.id for item in single.search("jsonl item 7", k=5).items]
    with _open(tmp_path / "ray") as engine:
        seen: list[int] = []
        got = ray_add(engine, paths, batch_size=16, progress=seen.append)
        assert sorted(got.report.added) == sorted(expected.added) and len(got.report.added) == 120
        assert [r.where for r in got.report.rejected] == [r.where for r in expected.rejected]
        assert f"{paths[0]}:11" in got.report.rejected[0].where and "titel" in got.report.rejected[0].reason
        assert sum(seen) == 123  # every record read, reported as it was committed
        vectors = _vectors(engine)
        assert vectors.keys() == want.keys()
        assert all(np.allclose(vectors[i], want[i]) for i in want)
        assert got.workers == 2 and got.resumed == 0 and got.retries == 0
        assert sum(f.items for f in got.per_worker.values()) == 120
        assert [item.id for item in engine.search("jsonl item 7", k=5).items] == top
        assert not (engine.path / FOLDER).exists() or not any((engine.path / FOLDER).iterdir())


def test_resumes_after_a_failure(ray_cluster: Any, tmp_path: Path) -> None:
    from xmodal.errors import ConfigError
    from xmodal.ingest.ray_ingest import ray_add

    marker = tmp_path / "failing"
    marker.touch()
    catalog = tmp_path / "c.jsonl"
    texts = [f"item {i}" if i != 45 else f"item {i} fail-while:{marker}" for i in range(80)]
    catalog.write_text("\n".join(json.dumps({"id": f"i{i}", "text": t}) for i, t in enumerate(texts)))
    with _open(tmp_path / "idx") as engine:
        with pytest.raises(ConfigError, match="told to fail"):
            ray_add(engine, [catalog], batch_size=10, workers=1)
        assert 0 < engine.store.count() <= 40  # the batches before the failing one, committed in order
        committed = engine.store.count()
        marker.unlink()
        done = ray_add(engine, [catalog], batch_size=10, workers=1)
        assert done.resumed == committed // 10 and done.batches == 8 - committed // 10
        assert engine.store.count() == 80 and sorted(done.report.added) == sorted(f"i{i}" for i in range(80))
        assert not list((engine.path / FOLDER).glob("*.jsonl"))  # the progress record goes when the add completes


def test_a_dying_worker_is_retried_with_a_bound(ray_cluster: Any, tmp_path: Path) -> None:
    """Batch 1's worker dies once (its batch runs again and is added); batch 3's dies every time (given up
    after 2 attempts: its items rejected with the reason, every other batch committed)."""
    from xmodal.ingest.ray_ingest import ray_add

    catalog = tmp_path / "c.jsonl"
    marks = {15: f" die-once:{tmp_path / 'died'}", 32: " die-always"}
    texts = [f"item {i}" + marks.get(i, "") for i in range(50)]
    catalog.write_text("\n".join(json.dumps({"id": f"i{i}", "text": t}) for i, t in enumerate(texts)))
    with _open(tmp_path / "idx") as engine:
        result = ray_add(engine, [catalog], batch_size=10, max_attempts=2, workers=1)
        assert (tmp_path / "died").exists() and result.retries == 3  # once for batch 1, twice for batch 3
        assert [r.where for r in result.report.rejected] == [f"{catalog}:{i}" for i in range(31, 41)]
        assert "died 2 times" in result.report.rejected[0].reason
        ids = {s.item.id for s in engine.store.iter_all()}
        assert ids == {f"i{i}" for i in range(50) if not 30 <= i < 40}  # batch 1 after its retry, and the rest
        assert list((engine.path / FOLDER).glob("*.jsonl"))  # kept: the same add again retries batch 3 alone


def test_cli_add_on_a_cluster(ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.jsonl"
    catalog.write_text("\n".join(json.dumps({"id": f"i{i}", "title": f"thing {i}"}) for i in range(30)))
    _open(tmp_path / "idx").close()
    status = main(
        ["--index", str(tmp_path / "idx"), "add", "--cluster", "local", "--workers", "1", str(catalog), "--json", "-q"]
    )
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["added"] == 30 and out["workers"] == 1 and out["per_worker"]
    assert main(["--index", str(tmp_path / "idx"), "add", "--cluster", "10.0.0.1:6379", str(catalog)]) == 1
    assert "ray://HOST:PORT" in capsys.readouterr().err
