"""REST throughput of the default mode against dense, same server, same run: the issue-19 target
"the default mode's API throughput under 32 concurrent clients is at least 0.8× the dense mode's".

Run:  python benchmarks/bench_mode_throughput.py [--items 5000] [--clients 32] [--seconds 10] [--rounds 3]
      [--write-every 5] [--log both|on|off] [--modes learned dense] [--tuned]

Data: WordNet synsets (Debian ``wordnet-base``) as in ``bench_serve_load.py`` (hashing encoder, exact index);
queries are lemma names of synsets left out of the index.

One server process (``python -m xmodal.serve``, uvicorn, one worker) serves every phase. Each round runs one
phase per (mode, log) pair: ``--clients`` concurrent keep-alive clients for ``--seconds``, every
``--write-every``-th request of a client adding one item (0: searches only), the others ``POST /search`` with
``mode`` set (``learned``, the default, or ``dense``) and ``log`` on or off (the REST default is on). The order
of the modes alternates from round to round, so drift (the catalog grows, other jobs on the machine) falls on
both. Reported per phase: throughput, search p50/p99, errors, and the server's CPU milliseconds per request
(from ``/proc``); per log setting: the summed throughput of each mode over the rounds and their ratio
(``learned / dense``, target ≥ 0.8), and the CPU milliseconds per request of the server and of the
clients (this process). ``--modes learned`` runs one mode alone (no ratio), e.g. to profile the
server from outside (``py-spy record --subprocesses -- python benchmarks/bench_mode_throughput.py ...``).

The index's background self-tuning is off (``XMODAL_AUTOTUNE=off``: no fit beside the timing); ``--tuned`` fits
the default mode's fusion before the server starts, as the autotuner does after an add, so the learned mode
searches on the self-tuned path (until the bandit has learned from 2,000 logged searches and takes over).

The clients share the machine with the server (on a 2-core box they compete for CPU). Prints one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the server inherits it: one BLAS thread per reader thread

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from serverutil import cpu_seconds, wordnet  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.ltr.extension import pipeline  # noqa: E402
from xmodal.ltr.selftune import tune  # noqa: E402
from xmodal.serve.testing import free_port, run_load, spawn_server  # noqa: E402

KEY = "bench-writer-key-01"
ENV = {"XMODAL_API_KEYS": f"{KEY}:write"}
MODES = ("learned", "dense")
TARGET = 0.8


def phase(pid: int, port: int, queries: list[str], args: argparse.Namespace, mode: str, log: bool) -> dict[str, Any]:
    """One load phase in ``mode`` with impression logging ``log``."""
    cpu0, client0 = cpu_seconds(pid), time.process_time()
    report = asyncio.run(
        run_load(
            f"http://127.0.0.1:{port}",
            clients=args.clients,
            seconds=args.seconds,
            write_every=args.write_every,
            key=KEY,
            prefix=f"{mode}-{int(log)}-{time.monotonic_ns()}",
            queries=tuple(queries),
            mode=mode,
            log=log,
        )
    )
    out = report.summary()
    requests = max(1, out["requests"])
    out.update(
        mode=mode,
        log=log,
        server_cpu_ms_per_request=round((cpu_seconds(pid) - cpu0) * 1000 / requests, 3),
        client_cpu_ms_per_request=round((time.process_time() - client0) * 1000 / requests, 3),
    )
    if report.errors:
        out["error_examples"] = report.errors[:3]
    return out


def main() -> None:
    os.environ.setdefault("XMODAL_AUTOTUNE", "off")  # no background fit of the default mode beside the timing
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="each mode this many phases per log setting")
    parser.add_argument("--write-every", type=int, default=5, help="every n-th request adds an item (0: none)")
    parser.add_argument("--log", choices=("both", "on", "off"), default="both", help="impression logging")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="the modes measured")
    parser.add_argument(
        "--tuned", action="store_true", help="self-tune the default mode before serving (what the autotuner does)"
    )
    args = parser.parse_args()
    logs = {"both": (False, True), "on": (True,), "off": (False,)}[args.log]
    items, queries = wordnet(args.items, args.queries)
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-modes-") as tmp:
        root = Path(tmp)
        index, config, server_log = root / "idx", root / "serve.toml", root / "server.log"
        config.write_text("rate = 1000000.0\nburst = 1000000\nlog_requests = false\nmcp = false\n")
        with Engine.open(index, encoder="hashing", index="exact") as engine:
            t0 = time.perf_counter()
            engine.add(items)
            build_s = time.perf_counter() - t0
            default_mode = engine.default_mode
            tuning = None
            if args.tuned:  # saved with the index: the server's default mode uses it (until the bandit takes over)
                pipe = pipeline(engine)
                pipe.set_tuned(tune(pipe))
                tuning = {"status": pipe.tuned_status, "seconds": pipe.tuned.report["seconds"] if pipe.tuned else None}
        load_before = os.getloadavg()
        port = free_port()
        proc = spawn_server(index, port, config=config, env=ENV, log=server_log)
        modes = tuple(args.modes)
        phases: list[dict[str, Any]] = []
        try:
            for log in logs:  # warm-up: each mode's first searches (lazy loads) outside the figures
                for mode in modes:
                    args_warm = argparse.Namespace(**{**vars(args), "seconds": 1.0})
                    phase(proc.pid, port, queries, args_warm, mode, log)
            for r in range(args.rounds):
                for log in logs:
                    for mode in modes if r % 2 == 0 else modes[::-1]:
                        phases.append({"round": r, **phase(proc.pid, port, queries, args, mode, log)})
        finally:
            proc.terminate()
            exit_code = proc.wait(120)
            if any(p["errors"] for p in phases) and server_log.exists():  # what the server said about them
                print(server_log.read_text(errors="replace")[-8000:], file=sys.stderr)
    summary: dict[str, Any] = {}
    for log in logs:
        mine = [p for p in phases if p["log"] == log]
        rps = {m: _sum(mine, m, "requests") / _sum(mine, m, "seconds") for m in modes}
        cpu = {m: round(_sum(mine, m, "server_cpu_ms_per_request") / args.rounds, 3) for m in modes}
        client = {m: round(_sum(mine, m, "client_cpu_ms_per_request") / args.rounds, 3) for m in modes}
        errors = sum(p["errors"] for p in mine)
        entry: dict[str, Any] = {
            "throughput_rps": {m: round(v, 1) for m, v in rps.items()},
            "server_cpu_ms_per_request": cpu,
            "client_cpu_ms_per_request": client,
            "errors": errors,
        }
        if len(modes) == len(MODES):
            ratio = rps["learned"] / rps["dense"]
            entry.update(ratio_learned_to_dense=round(ratio, 3), met=ratio >= TARGET and not errors)
        summary["log_on" if log else "log_off"] = entry
    result = {
        "benchmark": "mode_throughput",
        "data": "wordnet",
        "items": len(items),
        "default_mode": default_mode,
        "encoder": "hashing",
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "write_every": args.write_every,
        "build_s": round(build_s, 2),
        "tuning": tuning,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "server_exit_code": exit_code,
        "target_ratio": TARGET,
        "summary": summary,
        "phases": phases,
    }
    print(json.dumps(result, indent=2))


def _sum(phases: list[dict[str, Any]], mode: str, key: str) -> float:
    return float(sum(p[key] for p in phases if p["mode"] == mode))


if __name__ == "__main__":
    main()
