"""The LTR latency benchmark's build, like for like: ``Engine.open`` + ``add`` of its WordNet items, then the
learned pipeline's set-up (``Pipeline(engine)``), wall and main-thread CPU time (the load distorts CPU least).

    python benchmarks/bench_ltr_build.py --items 20000 [--extensions ltr,genret] [--parts]

``--extensions`` opens the index with those extensions only (e.g. without ``guards``, which 37ae63c did not
have); a tree older than extensions runs it without the option. ``--parts`` also reports the main thread's CPU
time in each part of the build (timing wrappers around the functions of :data:`PARTS` that the tree has; an
inner part is counted in its outer one too), the CPU time of the process's other threads during the build, and
the build's wall time split (Linux's ``/proc/thread-self/schedstat``) into the main thread's time on a CPU, its
time waiting for one (the load) and the rest (blocked: disk syncs, locks). Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_ltr_latency import wordnet_items

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ltr.pipeline import Pipeline

#: part -> (module, function or Class.method): what ``--parts`` times; a tree without one leaves it out
PARTS = {
    "encode (the hashing encoder's texts)": ("xmodal.encoders.hashing", "HashingEncoder._encode_texts"),
    "store: put (items, vectors, change log, full-text index, commit)": ("xmodal.store.sqlite", "SQLiteStore.put"),
    "store: full-text index rows (FTS5, statistics)": ("xmodal.store.fulltext", "FullText.put_many"),
    "store: commit": ("xmodal.store.sqlite", "SQLiteStore._commit"),
    "vector index (exact)": ("xmodal.backends.local", "LocalBackend.on_put"),
    "vector index (exact), 37ae63c": ("xmodal.space", "VectorSpace.put"),
    "extensions (all of them)": ("xmodal.extension_set", "ExtensionSet.apply"),
    "guards: on_put (all of it)": ("xmodal.guards.extension", "GuardsExtension.on_put"),
    "guards: injection rules": ("xmodal.guards.check", "scan_many"),
    "guards: injection classifier": ("xmodal.guards.classifier", "Classifier.probabilities"),
    "guards: result guard (toxicity)": ("xmodal.guards.results", "ResultGuard.on_put"),
    "ltr: on_put (memory index's predicted queries, its fold)": ("xmodal.ltr.extension", "LTRExtension.on_put"),
    "genret: on_put": ("xmodal.genret.extension", "GenretExtension.on_put"),
}


def on_cpu() -> tuple[float, float]:
    """The calling thread's time on a CPU and waiting in a run queue for one, in seconds ((0, 0) off Linux)."""
    try:
        run, wait, _ = Path("/proc/thread-self/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(run) / 1e9, int(wait) / 1e9


def timed_parts() -> dict[str, float]:
    """Wrap the functions of :data:`PARTS` to add up the calling thread's CPU time in each (seconds, filled in
    as the build runs)."""
    spent: dict[str, float] = {}
    for part, (module_name, name) in PARTS.items():
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, attr = name.split(".")
        for step in path:
            owner = getattr(owner, step, None)
        if owner is None or not hasattr(owner, attr):
            continue
        spent[part] = 0.0
        setattr(owner, attr, _timing(getattr(owner, attr), part, spent))
    return spent


def _timing(func: Callable[..., Any], part: str, spent: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            spent[part] += time.thread_time() - start

    return timed


def scan_worker(engine: Any) -> dict[str, Any]:
    """Where the guards scanned the items of this add (in the process, or in their scan worker), and the
    worker process's CPU time so far (Linux), in a tree that has the worker."""
    ext = getattr(engine, "_extensions", None)
    guards = ext._opened.get("guards") if ext is not None and hasattr(ext, "_opened") else None
    if guards is None or not hasattr(guards, "scanned_by"):
        return {}
    out: dict[str, Any] = {"guards_scanned_by": dict(guards.scanned_by)}
    worker = getattr(guards, "_worker", None)
    if worker is not None:
        try:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out["scan_worker_cpu_s"] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
        except (OSError, ValueError, IndexError):
            pass
    return out


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--extensions", default="", help="comma-separated; default: the index's default extensions")
    ap.add_argument("--parts", action="store_true", help="the main thread's CPU time by part of the build")
    args = ap.parse_args()
    items = wordnet_items(args.items)
    options: dict[str, Any] = {"extensions": args.extensions.split(",")} if args.extensions else {}
    spent = timed_parts() if args.parts else None
    process, sched = time.process_time(), on_cpu()
    wall, cpu = time.perf_counter(), time.thread_time()
    engine = Engine.open(Path(tempfile.mkdtemp()) / "idx", encoder=HashingEncoder(), index="exact", **options)
    engine.add(items)
    build_wall, build_cpu = time.perf_counter() - wall, time.thread_time() - cpu
    others = time.process_time() - process - build_cpu  # the other threads' CPU time during the build
    ran, waited = (now - before for now, before in zip(on_cpu(), sched, strict=True))
    Pipeline(engine)
    setup_wall, setup_cpu = time.perf_counter() - wall - build_wall, time.thread_time() - cpu - build_cpu
    out = {
        "items": len(items),
        "extensions": args.extensions or "default",
        "build_wall_s": round(build_wall, 2),
        "build_cpu_s": round(build_cpu, 2),
        "setup_wall_s": round(setup_wall, 2),
        "setup_cpu_s": round(setup_cpu, 2),
        "total_cpu_s": round(build_cpu + setup_cpu, 2),
    }
    if spent is not None:
        out["build_other_threads_cpu_s"] = round(others, 2)
        out["build_wall_on_cpu_s"] = round(ran, 2)
        out["build_wall_waiting_for_a_cpu_s"] = round(waited, 2)
        out["build_wall_blocked_s"] = round(build_wall - ran - waited, 2)
        out["parts_cpu_s"] = {part: round(s, 3) for part, s in spent.items()}
        out.update(scan_worker(engine))
    json.dump(out, sys.stdout, indent=2)
    print()
    engine.close()


if __name__ == "__main__":
    main()
