"""The LTR latency benchmark's build, like for like: ``Engine.open`` + ``add`` of its WordNet items, then the
learned pipeline's set-up (``Pipeline(engine)``), wall and main-thread CPU time (the load distorts CPU least).

    python benchmarks/bench_ltr_build.py --items 20000 [--extensions ltr,genret]

``--extensions`` opens the index with those extensions only (e.g. without ``guards``, which 37ae63c did not
have); a tree older than extensions runs it without the option. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_ltr_latency import wordnet_items

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ltr.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--extensions", default="", help="comma-separated; default: the index's default extensions")
    args = ap.parse_args()
    items = wordnet_items(args.items)
    options: dict[str, Any] = {"extensions": args.extensions.split(",")} if args.extensions else {}
    wall, cpu = time.perf_counter(), time.thread_time()
    engine = Engine.open(Path(tempfile.mkdtemp()) / "idx", encoder=HashingEncoder(), index="exact", **options)
    engine.add(items)
    build_wall, build_cpu = time.perf_counter() - wall, time.thread_time() - cpu
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
    json.dump(out, sys.stdout, indent=2)
    print()
    engine.close()


if __name__ == "__main__":
    main()
