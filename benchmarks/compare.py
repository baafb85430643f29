"""Run one benchmark on an older commit and on this checkout, alternating, and print both side by side.

    python benchmarks/compare.py [--baseline 37ae63c] [--rounds 1] -- bench_search.py --n 100000 --data clustered

The baseline is checked out (detached) into ``benchmarks/out/baseline-<sha>/`` and runs its *own* copy of the
benchmark script against its own sources (``PYTHONPATH``), so an API that moved in between does not matter. The
two trees run in turn (old, new, old, new, …) so a shared, noisy machine hurts both alike; each run's last JSON
object on stdout is flattened (``a.b.c``) and every numeric leaf is reported as old, new and new/old (the median
over rounds). The result is printed as JSON and written to ``benchmarks/out/compare-<script>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def baseline_tree(commit: str) -> Path:
    """A detached worktree of ``commit`` (made once, reused)."""
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, check=True, capture_output=True, text=True)
    tree = OUT / f"baseline-{sha.stdout.strip()[:12]}"
    if not (tree / "src" / "xmodal").is_dir():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True)
    return tree


def last_json(text: str) -> dict[str, Any]:
    """The last top-level JSON object printed (benchmarks print their result last)."""
    decoder, found, pos = json.JSONDecoder(), None, 0
    while (start := text.find("{", pos)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        if isinstance(value, dict):
            found = value
        pos = end
    if found is None:
        raise SystemExit(f"no JSON object in the benchmark's output:\n{text[-2000:]}")
    return found


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    if isinstance(value, dict):
        return {
            k: v for key, sub in value.items() for k, v in flatten(sub, f"{prefix}.{key}" if prefix else key).items()
        }
    if isinstance(value, list) and len(value) <= 16:
        return {k: v for i, sub in enumerate(value) for k, v in flatten(sub, f"{prefix}[{i}]").items()}
    return {}


def run(tree: Path, script: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    path = tree / "benchmarks" / script[0]
    done = subprocess.run([sys.executable, str(path), *script[1:]], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{path} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return flatten(last_json(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="37ae63c", help="the older commit (default: before issue 12)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- bench_x.py [its arguments]")
    args = parser.parse_args()
    script = [a for a in args.script if a != "--"] if args.script[:1] == ["--"] else args.script
    if not script:
        parser.error("name the benchmark after --, e.g. -- bench_search.py --n 20000")
    trees = {"old": baseline_tree(args.baseline), "new": ROOT}
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(run(tree, script))
    rows = {}
    for key in sorted(set(runs["old"][0]) & set(runs["new"][0])):
        old = statistics.median(r[key] for r in runs["old"] if key in r)
        new = statistics.median(r[key] for r in runs["new"] if key in r)
        rows[key] = {"old": old, "new": new, "ratio": new / old if old else None}
    result = {
        "script": script,
        "baseline": args.baseline,
        "rounds": args.rounds,
        "figures": rows,
        "only_old": sorted(set(runs["old"][0]) - set(runs["new"][0])),
        "only_new": sorted(set(runs["new"][0]) - set(runs["old"][0])),
    }
    (OUT / f"compare-{Path(script[0]).stem}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
