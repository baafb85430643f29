"""A measurement shim for ``bench_abuse.py --probe`` (not part of xmodal): loaded by the server's interpreter (and
its media worker's) through ``PYTHONPATH``, where ``XMODAL_ABUSE_PROBE`` names a file.

It names each Python thread's OS thread after it (``prctl``), and every 0.5 s appends one JSON line: the process,
the time, each thread's CPU seconds so far (by name: ``anonymous``, ``decode``, ``workers``, ``main``...) and the
anonymous admission's counters so far: CPU charged, searches run and their wall time, refusals by reason, turn
polls, and the courtesy gate's waits (:mod:`xmodal.serve.admission`, :mod:`xmodal.courtesy`).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
from typing import Any

OUT = os.environ.get("XMODAL_ABUSE_PROBE")
PR_SET_NAME = 15
COUNTS: dict[str, Any] = {
    "charged_s": 0.0,
    "runs": 0,
    "run_wall_s": 0.0,
    "refused": {},
    "turn_polls": 0,
    "gate_waits": 0,
    "gate_wait_s": 0.0,
}
LOCK = threading.Lock()


def _name_threads() -> None:
    libc = ctypes.CDLL(None)
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def inner(self: threading.Thread) -> None:
        libc.prctl(PR_SET_NAME, self.name[:15].encode(), 0, 0, 0)
        original(self)

    threading.Thread._bootstrap_inner = inner  # type: ignore[attr-defined]


def _count(key: str, amount: float = 1) -> None:
    with LOCK:
        COUNTS[key] += amount


def _patch() -> None:
    from xmodal import courtesy
    from xmodal.serve import admission

    cls = admission.Admission
    charge, run, check, busy, wait = cls.charge, cls.run, cls.check, cls.busy, courtesy.Gate.wait

    def charged(self: Any, client: str, cpu_seconds: float) -> None:
        _count("charged_s", max(0.0, cpu_seconds))
        charge(self, client, cpu_seconds)

    def ran(self: Any, client: str, fn: Any) -> Any:
        start = time.perf_counter()
        try:
            return run(self, client, fn)
        finally:
            _count("runs")
            _count("run_wall_s", time.perf_counter() - start)

    def checked(self: Any, client: str, *, running: bool = False) -> None:
        try:
            check(self, client, running=running)
        except Exception as exc:
            text = str(exc)
            reason = ("all" if "together" in text else "one") + ("_running" if "running;" in text else "_cpu")
            with LOCK:
                COUNTS["refused"][reason] = COUNTS["refused"].get(reason, 0) + 1
            raise

    def polled(self: Any, client: str) -> bool:
        _count("turn_polls")
        return bool(busy(self, client))

    def waited(self: Any) -> bool:
        start = time.perf_counter()
        done = bool(wait(self))
        took = time.perf_counter() - start
        if took > 1e-4:
            _count("gate_waits")
            _count("gate_wait_s", took)
        return done

    cls.charge, cls.run, cls.check, cls.busy = charged, ran, checked, polled  # type: ignore[method-assign]
    courtesy.Gate.wait = waited  # type: ignore[method-assign]


def _threads() -> dict[str, float]:
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as fh:
                name = fh.read().strip()
            with open(f"/proc/self/task/{task}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if task == str(os.getpid()):
            name = "main"
        elif name.startswith("xmodal-anonymou"):
            name = "anonymous"
        elif name.startswith("xmodal-decode"):
            name = "decode"
        elif name.startswith(("AnyIO", "Thread-", "asyncio")):
            name = "workers"
        out[name] = round(out.get(name, 0.0) + cpu, 3)
    return out


def _loop(path: str) -> None:
    patched = False
    with open(path, "a") as fh:
        while True:
            if not patched and "xmodal.serve.admission" in sys.modules:
                _patch()
                patched = True
            with LOCK:
                counts = json.loads(json.dumps(COUNTS))
            line = {"pid": os.getpid(), "t": round(time.time(), 3), "threads": _threads(), **counts}
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            time.sleep(0.5)


if OUT:
    _name_threads()
    threading.Thread(target=_loop, args=(OUT,), name="abuse-probe", daemon=True).start()
