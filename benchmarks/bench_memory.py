"""Peak memory and build time of xmodal's HNSW index per 1M 384-d vectors.

Run:  python benchmarks/bench_memory.py [--n 1000000] [--dim 384] [--chunk 50000]

Each size is built in a fresh subprocess (so the peak RSS is the index's, not this script's): the
child imports xmodal and FAISS, records its RSS, then adds random L2-normalised vectors chunk by
chunk (the input never exists whole) and reports its peak RSS (``ru_maxrss``) and the build time.
``index_bytes`` is the peak minus the RSS before the first vector; ``bytes_per_vector`` divides it
by n, and ``per_1m_vectors_gib`` scales it to one million vectors (HNSW memory is linear in n).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(n: int, dim: int, chunk: int, options: dict[str, object]) -> dict[str, object]:
    import numpy as np

    from xmodal.index.hnsw import HNSWIndex

    index = HNSWIndex(dim, **options)
    rng = np.random.default_rng(0)
    before = rss_bytes()
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index.add(np.arange(start, start + m, dtype=np.int64), x)
        del x
    build_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    after = rss_bytes()
    assert len(index) == n
    return {
        "n": n,
        "dim": dim,
        "build_s": round(build_s, 2),
        "vectors_per_s": round(n / build_s, 1),
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "peak_rss_bytes": peak,
        "index_bytes": after - before,
        "peak_over_baseline_bytes": peak - before,
        "bytes_per_vector": round((after - before) / n, 1),
        "raw_vector_bytes": 4 * dim,
        "options": index.options,
    }


def measure(n: int, dim: int, chunk: int, options: dict[str, object]) -> dict[str, object]:
    """Run :func:`child` in a fresh interpreter and parse its JSON line."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--n",
        str(n),
        "--dim",
        str(dim),
        "--chunk",
        str(chunk),
        "--options",
        json.dumps(options),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--options", default="{}", help="HNSW options as JSON, e.g. '{\"m\": 16}'")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = json.loads(args.options)
    if args.child:
        print(json.dumps(child(args.n[0], args.dim, args.chunk, options)))
        return
    runs = [measure(n, args.dim, args.chunk, options) for n in args.n]
    for run in runs:
        run["per_1m_vectors_gib"] = round(float(run["bytes_per_vector"]) * 1e6 / 2**30, 3)  # type: ignore[arg-type]
        run["build_s_scaled_to_1m_lower_bound"] = round(float(run["build_s"]) * 1e6 / int(run["n"]), 1)  # type: ignore[call-overload]
    print(json.dumps({"cpus": os.cpu_count(), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
