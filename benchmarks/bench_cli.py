"""`xmodal search` from process start to printed result, on a 100k-item text index with the offline encoder.

Run:  python benchmarks/bench_cli.py [--n 100000] [--runs 7] [--modes dense,learned]

The index (built once, cached in ``benchmarks/out/cli-<n>/``, git-ignored): items are WordNet
synsets (Debian ``wordnet-base``; title = lemma, text = gloss + `` #<i>``, attribute ``pos``), added
through ``Engine.add`` with ``index="auto"`` (HNSW at this size). The vectors are the real offline
encoder's (int8 MiniLM) of each item's document text (less the ``#<i>`` marker), computed first and replayed during ``add`` (so encoding is
timed apart from writing). With ``--base B < n`` only the first B glosses are encoded and item ``i``
gets the vector of gloss ``i % B`` plus Gaussian noise (sigma 0.01 per component, cosine ~0.98),
renormalised: a quicker build for slow machines. The index records the real offline encoder's
config, so the CLI reopens it with the real encoder, which encodes each query for real.

Run:  python benchmarks/bench_cli.py --index DIR  (any index folder; built there when it has no bench.json)

Cold start (``cold``; median of ``--cold-runs`` fresh processes, after the warm-up CLI run): ``open_s``
(``Engine.open``, the extensions' state included), ``first_search_s`` (the first default-mode search of
the query: the encoder's lazy load included), ``warm_search_p50_s`` (the same search ``--repeats`` times
more), ``first_over_warm``; then, in processes that load the encoder before searching, ``encoder_load_s``,
``first_search_encoder_loaded_s`` and its ratio (the search's own first-time cost); ``close_s``.

Timings (median of ``--runs`` after one warm-up run, each a fresh process):
- ``cli_s``: ``python -m xmodal.cli --index IDX search TEXT --mode M`` with unbuffered stdout,
  from just before spawning to the first byte of the result on stdout; ``exit_s``: to process exit.
- ``breakdown``: the same steps in an instrumented process: ``imports`` (interpreter start, the CLI
  and the command modules it imports for ``search``, argument parsing), ``engine_open``, ``encoder_load`` (the first
  query encoding minus a warm one), ``search`` (``Engine.search``, query encoding included),
  ``print``, ``close``.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
WORDNET = Path("/usr/share/wordnet")
QUERY = "a hot drink made from roasted beans"
NOISE = 0.01


def wordnet_entries() -> list[tuple[str, str, str]]:
    """(lemma, gloss, part of speech) of every WordNet synset, in file order."""
    entries = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            lemma = re.sub(r"\(.*\)$", "", head.split()[4].replace("_", " "))
            entries.append((lemma, gloss.split('; "')[0].strip(), part))
    return entries


def build_index(folder: Path, n: int, base: int) -> dict[str, Any]:
    """Add ``n`` WordNet synsets through Engine.add with replayed (real + noise) offline vectors."""
    from xmodal import Engine, Item
    from xmodal.encoders import BaseEncoder, Content, Purpose, create_encoder
    from xmodal.encoders.base import Vectors, normalize

    entries = wordnet_entries()[:n]
    base = min(base or len(entries), len(entries))
    noise_sigma = NOISE if base < len(entries) else 0.0
    items = [
        Item.create(f"wn-{i}", title=lemma, text=f"{gloss} #{i}", attributes={"pos": pos})
        for i, (lemma, gloss, pos) in enumerate(entries)
    ]
    real = create_encoder("offline")
    started = time.perf_counter()
    texts = [items[i].document_text.replace(f" #{i}", "") for i in range(base)]  # what add would encode
    base_vectors = real.encode_documents([Content(text=t) for t in texts])
    encode_s = time.perf_counter() - started

    class Replay(BaseEncoder):
        """Stands in for the offline encoder while adding: item ``#i`` gets base vector ``i % base`` + noise."""

        name = "offline"
        native_dim = real.dim
        modalities = frozenset({"text"})

        def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
            rows = [int(re.findall(r"#(\d+)", t)[-1]) for t in texts]
            noise = np.random.default_rng(rows[0]).normal(0.0, noise_sigma, (len(rows), self.native_dim))
            return normalize(base_vectors[[r % base for r in rows]] + noise.astype(np.float32))

        def config(self) -> dict[str, Any]:
            return real.config()

    started = time.perf_counter()
    with Engine.open(folder, encoder=Replay(), index="auto") as engine:
        report = engine.add(items)
    add_s = time.perf_counter() - started
    meta = {"n": len(items), "base": base, "noise": noise_sigma, "encode_base_s": encode_s, "add_s": add_s}
    meta["rejected"] = len(report.rejected)
    (folder / "bench.json").write_text(json.dumps(meta))
    return meta


_PROBE = r"""
import sys, time, json
from pathlib import Path
import xmodal.cli as cli
from xmodal.cli.common import open_engine
from xmodal.cli.core import _print_hits
from xmodal.encoders import Content
from xmodal.records import Query
# the parser the CLI builds (a tree before `command_of`: the full one, all it had)
parser = cli.build_parser(cli.command_of(sys.argv[1:])) if hasattr(cli, "command_of") else cli.build_parser()
args = parser.parse_args(sys.argv[1:])
imported = time.time()
t0 = time.perf_counter()
engine = open_engine(args)
t1 = time.perf_counter()
engine.encoder.encode_queries([Content(text=args.text)])
t2 = time.perf_counter()
engine.encoder.encode_queries([Content(text=args.text)])
t3 = time.perf_counter()
query = Query(text=args.text, k=args.k, mode=args.mode)
result = engine.search(query, base_dir=Path.cwd(), log=args.log, explain=args.explain)
t4 = time.perf_counter()
_print_hits(result)
sys.stdout.flush()
t5 = time.perf_counter()
engine.close()
t6 = time.perf_counter()
phases = {"engine_open": t1 - t0, "encoder_load": (t2 - t1) - (t3 - t2), "search": t4 - t3, "print": t5 - t4,
          "close": t6 - t5, "warm_query_encode": t3 - t2}
print(json.dumps({"imported": imported, "phases": phases}), file=sys.stderr)
"""


_COLD = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
from xmodal import Engine
from xmodal.records import Query
t1 = time.perf_counter()
index, text, repeats, encoder_first = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
engine = Engine.open(index)
t2 = time.perf_counter()
encoder = 0.0
if encoder_first:  # load the encoder before the first search, to see the search's own first-time cost
    engine.encode_query(Query(text="an unrelated warm-up text"))
    encoder = time.perf_counter() - t2
t3 = time.perf_counter()
first = engine.search(text, k=10)
t4 = time.perf_counter()
warm = []
for _ in range(repeats):
    start = time.perf_counter()
    engine.search(text, k=10)
    warm.append(time.perf_counter() - start)
t5 = time.perf_counter()
engine.close()
t6 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "encoder_s": encoder, "first_s": t4 - t3,
                  "warm_p50_s": statistics.median(warm), "close_s": t6 - t5}))
"""


def time_cold(index: Path, repeats: int, encoder_first: bool) -> dict[str, float]:
    """One fresh process: open, the first default-mode search, ``repeats`` warm ones, close (seconds)."""
    probe = [sys.executable, "-c", _COLD, str(index), QUERY, str(repeats), "1" if encoder_first else "0"]
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}


def cold_start(index: Path, runs: int, repeats: int) -> dict[str, Any]:
    """Issue 12's cold-start figures: median over ``runs`` fresh processes of each measurement."""
    plain = median_of([time_cold(index, repeats, False) for _ in range(runs)])
    loaded = median_of([time_cold(index, repeats, True) for _ in range(runs)])
    return {
        "open_s": plain["open_s"],
        "first_search_s": plain["first_s"],
        "warm_search_p50_s": plain["warm_p50_s"],
        "first_over_warm": round(plain["first_s"] / plain["warm_p50_s"], 2),
        "encoder_load_s": loaded["encoder_s"],
        "first_search_encoder_loaded_s": loaded["first_s"],
        "first_over_warm_encoder_loaded": round(loaded["first_s"] / loaded["warm_p50_s"], 2),
        "close_s": plain["close_s"],
        "import_s": plain["import_s"],
    }


def cli_command(index: Path, mode: str | None) -> list[str]:
    """The `xmodal search` command line (the default mode when ``mode`` is None)."""
    cmd = [sys.executable, "-m", "xmodal.cli", "--index", str(index), "search", QUERY, "-k", "10"]
    return cmd + (["--mode", mode] if mode else [])


def time_cli(cmd: list[str]) -> tuple[float, float]:
    """Seconds from spawn to the first stdout byte, and to exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - start
    proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return first, time.perf_counter() - start


def time_phases(cmd: list[str]) -> dict[str, float]:
    """Per-phase seconds of one instrumented run (the CLI's own steps); ``imports`` is timed from spawn."""
    probe = [sys.executable, "-c", _PROBE, *cmd[3:]]
    start = time.time()
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return {"imports": report["imported"] - start, **report["phases"]}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}


def python_start() -> float:
    """Seconds for ``python -c pass`` (the floor of any CLI run)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--base", type=int, default=0, help="encode only this many glosses (0: all, see above)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="dense,default", help="comma-separated; 'default' = no --mode flag")
    parser.add_argument("--index", type=Path, help="the index folder (default: benchmarks/out/cli-<n>[-base<B>])")
    parser.add_argument("--build-only", action="store_true", help="build the index (when missing) and stop")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes for the cold-start figures (0: skip)")
    parser.add_argument("--repeats", type=int, default=20, help="warm searches per cold-start process")
    args = parser.parse_args()
    folder = args.index or OUT / (f"cli-{args.n}" + (f"-base{args.base}" if args.base else ""))
    meta_path = folder / "bench.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else build_index(folder, args.n, args.base)
    if args.build_only:
        print(json.dumps({"index": meta}, indent=2))
        return
    out: dict[str, Any] = {"index": meta, "query": QUERY, "runs": args.runs}
    out["python_c_pass_s"] = round(statistics.median(python_start() for _ in range(args.runs)), 4)
    time_cli(cli_command(folder, None))  # warm-up: page cache, first-use derived files (built once, then read)
    if args.cold_runs:
        out["cold"] = cold_start(folder, args.cold_runs, args.repeats)
    for mode in args.modes.split(","):
        cmd = cli_command(folder, None if mode == "default" else mode)
        time_cli(cmd)  # warm-up: page cache, first-use derived files
        walls = [time_cli(cmd) for _ in range(args.runs)]
        phases = [time_phases(cmd) for _ in range(args.runs)]
        out[mode] = {
            "command": " ".join(["xmodal", *cmd[3:]]),
            "cli_s": round(statistics.median(w[0] for w in walls), 4),
            "exit_s": round(statistics.median(w[1] for w in walls), 4),
            "cli_s_all": [round(w[0], 3) for w in walls],
            "breakdown": median_of(phases),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
