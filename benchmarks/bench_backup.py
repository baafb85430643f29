"""Backup of a served index while clients write, then restore and check (issue 16, part 3).

Run:  PYTHONPATH=.:src python benchmarks/bench_backup.py [--n 100000] [--clients 8] [--work DIR]

Builds an index of ``--n`` WordNet synsets (Debian ``wordnet-base``) with the hashing encoder (no model:
the items' text is real, the vectors cheap) and the default extensions, or reuses the one built by an
earlier run under ``--work``. Then it serves a copy with ``xmodal serve`` (a child process) while
``--clients`` threads add items over REST, one per request, and runs ``xmodal backup`` as another process,
as an operator's cron job would. Writes go on during the backup and a second after it. Then it stops the
server, restores the backup into a new folder with ``xmodal restore`` and checks the result with
``xmodal check`` (both child processes), and looks up every write acknowledged before the backup started.

The peer is a plain copy of the same folder (``shutil.copytree``, with the server stopped: no consistency
under writes), timed in the same run; ``backup_vs_copy`` is the ratio of the two. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from serverutil import wordnet

from xmodal import Engine
from xmodal.serve.testing import free_port, wait_ready

KEY = "bench-admin-key-0001"


def cli(*args: str) -> tuple[dict[str, Any], float]:
    """Run ``xmodal ARGS --json`` as a child process; its JSON output and wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "xmodal.cli", *args, "--json"], capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"xmodal {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout), took


def build(base: Path, n: int) -> float:
    """The index of ``n`` WordNet items (kept under ``base`` for later runs); seconds spent building it."""
    if (base / "store.sqlite").is_file():
        with Engine.open(base) as engine:
            if len(engine) == n:
                return 0.0
        shutil.rmtree(base)
    items, _ = wordnet(n, 0)
    if len(items) < n:
        raise SystemExit(f"only {len(items)} WordNet synsets found; install wordnet-base or lower --n")
    start = time.perf_counter()
    with Engine.open(base, encoder="hashing") as engine:
        engine.add(items)
    return time.perf_counter() - start


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Writers:
    """``clients`` threads adding one item per request until stopped; each ack with its monotonic time."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.acked, self.errors = url, list[tuple[float, str]](), list[str]()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, n: int) -> None:
        import httpx

        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
            i = 0
            while not self._stop.is_set():
                item_id = f"bench-{n}-{i}"
                item = {"id": item_id, "title": f"written during the backup {n} {i}", "attributes": {"client": n}}
                try:
                    r = client.post("/items", json={"items": [item]})
                    if r.status_code == 200 and r.json()["added"] == [item_id]:
                        self.acked.append((time.monotonic(), item_id))
                    else:
                        self.errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                i += 1


def serve(index: Path, port: int, config: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "xmodal.cli", "--index", str(index), "serve", "--port", str(port)]
    cmd += ["--config", str(config), "--log-level", "warning"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out)
    wait_ready(f"http://127.0.0.1:{port}", proc, timeout=300)
    return proc


def run(work: Path, n: int, clients: int, warmup: float) -> dict[str, Any]:
    base, live, dest, back = work / "base", work / "live", work / "backup", work / "restored"
    built_s = build(base, n)
    for folder in (live, dest, back):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, live)
    config = work / "serve.json"
    config.write_text(json.dumps({"keys": [{"key": KEY, "scopes": ["admin"], "rate": 100000, "burst": 100000}]}))
    port = free_port()
    proc = serve(live, port, config, work / "serve.log")
    try:
        with Writers(f"http://127.0.0.1:{port}", clients) as writers:
            time.sleep(warmup)
            started = time.monotonic()
            summary, backup_s = cli("--index", str(live), "backup", str(dest))
            ended = time.monotonic()
            time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    before = {item_id for at, item_id in writers.acked if at < started}
    during = [item_id for at, item_id in writers.acked if started <= at < ended]
    copy_start = time.perf_counter()
    shutil.copytree(live, work / "copy")
    copy_s = time.perf_counter() - copy_start
    shutil.rmtree(work / "copy")
    restored, restore_s = cli("--index", str(back), "restore", str(dest))
    report, check_s = cli("--index", str(back), "check")
    with sqlite3.connect(back / "store.sqlite") as db:
        present = {row[0] for row in db.execute("SELECT id FROM items WHERE id LIKE 'bench-%'")}
    return {
        "n": n,
        "clients": clients,
        "build_s": round(built_s, 1),
        "index_mb": round(folder_bytes(live) / 1e6, 1),
        "backup_s": round(backup_s, 2),
        "backup_inner_s": summary["seconds"],
        "backup_mb": round(folder_bytes(dest) / 1e6, 1),
        "backup_files": summary["files"],
        "copy_s": round(copy_s, 2),
        "backup_vs_copy": round(backup_s / copy_s, 2) if copy_s else None,
        "writes_acked_before_backup": len(before),
        "writes_acked_during_backup": len(during),
        "writes_acked_total": len(writers.acked),
        "write_errors": len(writers.errors),
        "acked_before_backup_missing": len(before - present),
        "acked_during_backup_in_backup": len(set(during) & present),
        "backup_items": summary["items"],
        "restore_s": round(restore_s, 2),
        "restored_items": restored["items"],
        "check_s": round(check_s, 2),
        "check_ok": report["ok"],
        "check_problems": report["problems"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of writes before the backup starts")
    parser.add_argument("--work", type=Path, default=None, help="keep the built index here for later runs")
    args = parser.parse_args()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args.work, args.n, args.clients, args.warmup)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp), args.n, args.clients, args.warmup)))


if __name__ == "__main__":
    main()
