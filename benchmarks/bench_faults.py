"""The long fault-injection benchmark (issue 13): randomized rounds of five faults against real index folders,
written by several processes; after each, every acknowledged write must be in the store *and searchable*,
and ``xmodal check`` must pass. The short suite is ``tests/test_faults.py``.

Run:  PYTHONPATH=src python benchmarks/bench_faults.py [--rounds 12] [--seed 13] [--kinds kill9,torn,...]

(as root on Linux for the tmpfs; about 4–5 minutes with the defaults on a shared 2-core VM.)

Writers are ``faultwriter.py`` processes (random adds, replacements, deletes and checkpoints through
``Engine``, hashing encoder, exact index, the default extensions ``ltr`` and ``genret``; a tenth of the new
items carry a small PNG) and ``xmodal add`` of a catalog; a write is acknowledged only once the call
returned (the CLI: exit status 0). ``faultcheck.py`` judges the folder in a fresh process. What each fault
is and what is expected after it:

- ``kill9``: 3 writers and sometimes an ``xmodal add`` on one long-lived folder, each killed with SIGKILL
  at its own random moment. Expected: nothing acknowledged lost, all searchable, ``check`` ok.
- ``disk_full``: a fresh folder on a small tmpfs (16–32 MiB; with ``--disk inject``, or where mount is not
  allowed, ``ENOSPC`` injected by the shim instead), 2 writers, the disk filled at a random moment (0 to
  256 KiB left). Expected: failed writes raise ``DiskFull`` (nothing else); ``info`` and ``search`` work on
  the full disk while the writers still try, then (the writers stopped, or killed) the verification and
  ``check``; nothing acknowledged lost; once space is freed, a new writer's 10 ops all succeed and
  ``check`` is ok.
- ``fsync``: 2 writers (and sometimes ``xmodal add``) under the ``LD_PRELOAD`` shim (``faultutil.py``,
  built with ``cc``), with 1–3 windows in which every ``fsync`` on the folder fails with ``EIO``; then
  stopped or killed. Expected: a failed write raises an ``xmodal.errors`` error (the CLI: one line, exit 1),
  nothing acknowledged lost, ``check`` ok.
- ``torn``: a writer runs to completion, then one derived file (``index/``, ``ltr/``, ``genret/``) is
  truncated, zero-filled or garbage-filled from a random offset, or deleted, or a checkpoint is left
  half swapped (``X.tmp`` + ``X.old``, no ``X``). Expected: rebuilt from the store on open, all searchable,
  ``check`` ok without ``--repair``.
- ``corrupt``: a writer runs to completion, the store is copied (the backup), one random page of
  ``store.sqlite`` is overwritten (random bytes, or zeros), then ``info``, ``search``, ``add`` and
  ``check --full`` run (half the rounds as if the store were too large for the quick check on open).
  Expected: each either works (the page held nothing live) or exits 1 naming the damage and the recovery
  (restore from a backup), never a traceback; when damage was found, the backup is restored and then all
  acknowledged writes are searchable and ``check`` is ok (``--repair`` allowed: derived data may be ahead).

Prints one JSON object: per fault, rounds, acknowledged writes, lost (must be 0), unsearchable acknowledged
writes (must be 0), check failures, errors the writers saw by type, and wall time. Exit status 1 when
anything acknowledged was lost or unsearchable, ``check`` failed where it must pass, a writer saw an error
that is not an ``xmodal.errors`` one, or a command crashed (a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faultutil as fu
from faultcheck import read_ledger

from xmodal import Engine
from xmodal.encoders import HashingEncoder

KINDS = ("kill9", "disk_full", "fsync", "torn", "corrupt")
EXPECTED = {
    "kill9": "nothing acknowledged lost, all searchable, check ok",
    "disk_full": "failed writes raise DiskFull; info, search, check work on the full disk; nothing acknowledged "
    "lost; writes work once space is freed; check ok",
    "fsync": "failed writes raise an xmodal.errors error (CLI: one line, exit 1); nothing acknowledged lost; check ok",
    "torn": "rebuilt from the store on open: all searchable, check ok without --repair",
    "corrupt": "each command works or exits 1 naming the damage and the backup (no traceback); after the backup is "
    "restored, all acknowledged writes searchable, check ok (--repair allowed)",
}


@dataclass
class Tally:
    """One fault kind's results."""

    rounds: int = 0
    ledgers: set[Path] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    resurrected: set[str] = field(default_factory=set)
    phantom: set[str] = field(default_factory=set)
    unsearchable: set[str] = field(default_factory=set)
    unsearchable_unacked: set[str] = field(default_factory=set)
    misses: Counter[str] = field(default_factory=Counter)
    verified: int = 0  # ids judged, summed over rounds
    targeted: int = 0  # exact-title searches, summed over rounds
    check_failures: int = 0
    repairs: int = 0  # `check --repair` where the fault allows it
    crashes: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    def report(self) -> dict[str, Any]:
        ledger = read_ledger(*sorted(self.ledgers))
        unclear = {k: v for k, v in ledger.errors.items() if not k.startswith("xmodal.errors.")}
        return {
            "rounds": self.rounds,
            "acknowledged_writes": ledger.acked_writes,
            "unacknowledged_ops": ledger.unacked_ops,
            "lost": len(self.lost),
            "resurrected": len(self.resurrected),
            "phantom": len(self.phantom),
            "unsearchable": len(self.unsearchable),
            "unsearchable_unacknowledged": len(self.unsearchable_unacked),
            "misses_by_search": dict(self.misses),
            "ids_verified": self.verified,
            "targeted_searches": self.targeted,
            "check_failures": self.check_failures,
            "repairs": self.repairs,
            "writer_errors": dict(ledger.errors),
            "unclear_errors": sum(unclear.values()),
            "crashes": len(self.crashes),
            "crash_samples": self.crashes[:3],
            "examples": {n: sorted(getattr(self, n))[:3] for n in ("lost", "unsearchable") if getattr(self, n)},
            "notes": dict(self.notes),
            "wall_s": round(self.wall_s, 1),
        }

    def failures(self) -> list[str]:
        r = self.report()
        keys = ("lost", "resurrected", "phantom", "unsearchable", "unsearchable_unacknowledged")
        keys += ("check_failures", "unclear_errors", "crashes")
        return [f"{k}={r[k]}" for k in keys if r[k]]


class Bench:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root, self.args = root, args
        self.shim = fu.build_shim(root)
        (root / "crashes").mkdir()
        self.tallies = {kind: Tally() for kind in args.kinds}

    def folder(self, kind: str, r: int) -> Path:
        """The folder of round ``r``: one index lives ``--life`` rounds (the faults pile up on it), then a new one."""
        return self.root / kind / f"life{r // self.args.life}"

    def seed(self, *parts: object) -> int:
        return random.Random(repr((self.args.seed, *parts))).randrange(2**31)

    # -- the judge ------------------------------------------------------------------------------------
    def judge(self, tally: Tally, index: Path, ledgers: Path, rng: random.Random, *, repair_ok: bool = False) -> None:
        """Verify the folder in a fresh process and run ``xmodal check`` (in a random order): a check that fails
        counts, unless ``repair_ok``; either way ``check --repair`` puts the folder right for the next round."""
        tally.ledgers.update(ledgers.glob("*.ledger"))
        steps = [self.verify, self.check]
        rng.shuffle(steps)
        for step in steps:
            step(tally, index, ledgers, rng, repair_ok)

    def verify(self, tally: Tally, index: Path, ledgers: Path, rng: random.Random, _: bool = False) -> None:
        cmd = [sys.executable, str(fu.BENCH / "faultcheck.py"), str(index), str(ledgers)]
        cmd += ["--seed", str(rng.randrange(2**31)), "--sample", str(self.args.sample)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **fu.QUIET}, timeout=600)
        if done.returncode != 0:
            if not self.crashed(tally, "verify", done):
                tally.crashes.append(f"verify: exit {done.returncode}: {done.stderr.strip()[-300:]}")
            return
        found = json.loads(done.stdout)
        tally.verified += found["checked"]
        tally.targeted += found["targeted"]
        tally.misses.update(found["misses"])
        for name in ("lost", "resurrected", "phantom", "unsearchable", "unsearchable_unacked"):
            getattr(tally, name).update(found[f"{name}_ids"])

    def check(self, tally: Tally, index: Path, _: Path, __: random.Random, repair_ok: bool) -> None:
        done = fu.cli(index, "check", "--json")
        self.crashed(tally, "check", done)
        if done.returncode == 0:
            return
        if repair_ok:
            tally.repairs += 1
        else:
            tally.check_failures += 1
            problems = json.loads(done.stdout).get("problems", []) if done.stdout.startswith("{") else []
            tally.notes[f"check: {(problems or ['?'])[0][:120]}"] += 1
        fixed = fu.cli(index, "check", "--repair")
        if fixed.returncode != 0:
            tally.crashes.append(f"check --repair: {(fixed.stdout + fixed.stderr).strip()[-400:]}")

    def crashed(self, tally: Tally, what: str, done: subprocess.CompletedProcess[str] | str) -> bool:
        """Record a traceback in ``done``'s stderr as a crash (the whole of it in ``crashes/`` of the work
        folder, kept with ``--keep``)."""
        err = done if isinstance(done, str) else done.stderr
        if "Traceback" not in err:
            return False
        log = self.root / "crashes" / f"{len(list((self.root / 'crashes').glob('*')))}.txt"
        log.write_text(f"{what}\n{err}")
        tally.crashes.append(f"{what}: {err.strip().splitlines()[-1][:300]} ({log.name})")
        return True

    def create(self, index: Path) -> None:
        Engine.open(index, encoder=HashingEncoder(), index="exact").close()

    def catalog(self, path: Path, name: str, rng: random.Random) -> list[list[Any]]:
        """A JSON Lines catalog for ``xmodal add`` and its ledger rows (writer ``name``, grp 0, gen 0)."""
        from faultwriter import token

        rows = [[f"{name}-{i}", f"{token(rng)} {token(rng)}", 0, 0, False] for i in range(rng.randint(50, 400))]
        lines = [
            json.dumps({"id": i, "title": t, "attributes": {"writer": name, "grp": 0, "gen": 0}}) for i, t, *_ in rows
        ]
        path.write_text("\n".join(lines) + "\n")
        return rows

    def cli_add(
        self, index: Path, ledgers: Path, name: str, rng: random.Random, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``xmodal add`` of a fresh catalog; its ledger holds the intent (:meth:`cli_done` the outcome)."""
        catalog = ledgers.parent / f"{name}.jsonl"
        rows = self.catalog(catalog, name, rng)
        ledger = ledgers / f"{name}.ledger"
        append(ledger, {"n": 0, "op": "put", "items": rows})
        cmd = fu.cli_command(index, ["add", "-q", str(catalog)])
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **fu.QUIET, **(env or {})}
        )
        return proc, ledger

    def cli_done(self, tally: Tally, proc: subprocess.Popen[bytes], ledger: Path) -> None:
        """Record how ``xmodal add`` ended: exit 0 acknowledges it; killed, it is not; refused (exit 1), it must
        have said why in one line (a traceback is a crash)."""
        err = fu.finish(proc)
        if proc.returncode == 0:
            append(ledger, {"n": 0, "ack": True})
        elif proc.returncode > 0:
            tally.notes["xmodal add refused"] += 1
            if not self.crashed(tally, "xmodal add", err):
                append(ledger, {"n": 0, "error": f"xmodal.errors.* (xmodal add, exit 1): {err.strip()[-200:]}"})

    # -- the faults -----------------------------------------------------------------------------------
    def kill9(self, tally: Tally, r: int, rng: random.Random) -> None:
        folder = self.folder("kill9", r)
        index, ledgers = folder / "idx", folder / "ledgers"
        if not index.exists():
            ledgers.mkdir(parents=True)
            self.create(index)
        paths = [ledgers / f"w{n}.ledger" for n in range(self.args.writers)]
        procs = [fu.writer(index, p, self.seed("kill9", r, n)) for n, p in enumerate(paths)]
        cli = self.cli_add(index, ledgers, f"cli{r}", rng) if rng.random() < 0.5 else None
        try:
            fu.wait_for_acks(paths, procs, 1)
            everyone: list[subprocess.Popen[bytes]] = [*procs, *([cli[0]] if cli else [])]
            for proc in rng.sample(everyone, len(everyone)):
                time.sleep(rng.uniform(0.0, self.args.span))
                fu.kill9(proc)
        finally:
            for proc in procs:
                fu.kill9(proc)
        if cli:
            self.cli_done(tally, *cli)
        self.judge(tally, index, ledgers, rng)

    def disk_full(self, tally: Tally, r: int, rng: random.Random) -> None:
        folder = self.root / "disk_full" / f"r{r}"
        ledgers, stop = folder / "ledgers", folder / "stop"
        ledgers.mkdir(parents=True)
        size = rng.choice([16, 24, 32])
        with fu.tmpfs(folder / "disk", size) if self.args.disk != "inject" else _none() as disk:
            if disk is None and (self.args.disk == "tmpfs" or self.shim is None):
                raise RuntimeError(
                    "no tmpfs here (mount not allowed) and no shim to inject ENOSPC: use --kinds without disk_full"
                )
            index = (disk or folder) / "idx"
            control = folder / "enospc.on"
            env = fu.shim_env(self.shim, index, control, "FAULT_ENOSPC") if disk is None and self.shim else None
            tally.notes["tmpfs" if disk else "injected ENOSPC"] += 1
            self.create(index)
            paths = [ledgers / f"f{n}.ledger" for n in range(2)]
            procs = [fu.writer(index, p, self.seed("disk", r, n), stop=stop, env=env) for n, p in enumerate(paths)]
            try:
                fu.wait_for_acks(paths, procs, 1)
                time.sleep(rng.uniform(0.0, 1.0))
                filler = fu.fill(disk, rng.choice([0, 4096, 65536, 262144])) if disk else control
                filler.touch()
                time.sleep(rng.uniform(0.3, 1.0))
                self.full_disk_reads(tally, index, env)  # while the writers still try
                self.stop_or_kill(tally, procs, stop, rng, "on a full disk")
                self.verify(tally, index, ledgers, rng)  # reads work on the full disk
                done = fu.cli(index, "check", "--json", env=env)  # and so does check
                if not self.crashed(tally, "check on a full disk", done) and done.returncode != 0:
                    tally.check_failures += 1
                    tally.notes[f"check on a full disk: exit {done.returncode}: {done.stdout[-200:]}"] += 1
            finally:
                for proc in procs:
                    fu.kill9(proc)
            filler.unlink()
            if disk and shutil.disk_usage(disk).free < 4 << 20:  # the writers filled it themselves: grow it
                fu.grow(disk, size + 16)
                tally.notes["grown after filling itself"] += 1
            after = ledgers / "after.ledger"
            proc = fu.writer(index, after, self.seed("disk-after", r), ops=10, env=env)
            self.crashed(tally, "writer after space was freed", fu.finish(proc))
            if read_ledger(after).errors or proc.returncode != 0:
                tally.crashes.append(f"writes fail once space is freed: {dict(read_ledger(after).errors)}")
            self.judge(tally, index, ledgers, rng)

    def fsync(self, tally: Tally, r: int, rng: random.Random) -> None:
        if self.shim is None:
            raise RuntimeError("no C compiler for the fsync shim: use --kinds without fsync")
        folder = self.folder("fsync", r)
        index, ledgers, control, stop = folder / "idx", folder / "ledgers", folder / "fsync.on", folder / f"stop{r}"
        if not index.exists():
            ledgers.mkdir(parents=True)
            self.create(index)
        env = fu.shim_env(self.shim, index, control, "FAULT_FSYNC")
        paths = [ledgers / f"s{n}.ledger" for n in range(2)]
        procs = [fu.writer(index, p, self.seed("fsync", r, n), stop=stop, env=env) for n, p in enumerate(paths)]
        cli = None
        try:
            fu.wait_for_acks(paths, procs, 1)
            for window in range(rng.randint(1, 3)):
                if window == 0 and rng.random() < 0.5:
                    cli = self.cli_add(index, ledgers, f"cli{r}", rng, env)
                time.sleep(rng.uniform(0.05, 0.4))
                control.touch()
                time.sleep(rng.uniform(0.02, 0.4))
                control.unlink()
                tally.notes["fsync windows"] += 1
            time.sleep(rng.uniform(0.05, 0.3))
            self.stop_or_kill(tally, procs, stop, rng, "after the fsync failures")
        finally:
            control.unlink(missing_ok=True)
            for proc in procs:
                fu.kill9(proc)
        if cli:
            self.cli_done(tally, *cli)
        self.judge(tally, index, ledgers, rng)

    def full_disk_reads(self, tally: Tally, index: Path, env: dict[str, str] | None) -> None:
        """``info`` and ``search`` in fresh processes must work on the full disk."""
        for args in (["info", "--json"], ["search", "lamp", "--mode", "dense"]):
            done = fu.cli(index, *args, env=env)
            if not self.crashed(tally, f"{args[0]} on a full disk", done) and done.returncode != 0:
                tally.crashes.append(f"{args[0]} on a full disk: exit {done.returncode}: {done.stderr.strip()[-300:]}")

    def stop_or_kill(
        self, tally: Tally, procs: list[subprocess.Popen[bytes]], stop: Path, rng: random.Random, when: str
    ) -> None:
        """Half the time the writers are stopped (they close the engine: a checkpoint), else killed -9 each at
        its own moment."""
        if rng.random() < 0.5:
            stop.touch()
            for proc in procs:
                self.crashed(tally, f"writer stopping {when}", fu.finish(proc))
        else:
            tally.notes[f"killed {when}"] += 1
            for proc in rng.sample(procs, len(procs)):
                time.sleep(rng.uniform(0.0, 0.3))
                fu.kill9(proc)

    def torn(self, tally: Tally, r: int, rng: random.Random) -> None:
        folder = self.folder("torn", r)
        index, ledgers = folder / "idx", folder / "ledgers"
        if not index.exists():
            ledgers.mkdir(parents=True)
            self.create(index)
        proc = fu.writer(index, ledgers / f"t{r % 2}.ledger", self.seed("torn", r), ops=rng.randint(5, 30))
        self.crashed(tally, "writer", fu.finish(proc))
        what = fu.tear(index, rng)
        tally.notes[what.split(" ")[0]] += 1
        before = tally.failures()
        self.judge(tally, index, ledgers, rng)
        if tally.failures() != before:
            tally.notes[f"failed after: {what}"] += 1

    def corrupt(self, tally: Tally, r: int, rng: random.Random) -> None:
        folder = self.folder("corrupt", r)
        index, ledgers, backup = folder / "idx", folder / "ledgers", folder / "backup"
        if not index.exists():
            ledgers.mkdir(parents=True)
            self.create(index)
        proc = fu.writer(index, ledgers / f"c{r % 2}.ledger", self.seed("corrupt", r), ops=rng.randint(5, 30))
        self.crashed(tally, "writer", fu.finish(proc))
        fu.copy_store(index, backup)
        what = fu.corrupt_page(index / "store.sqlite", rng)
        unchecked = rng.random() < 0.5
        name = f"cli{r}"
        catalog = folder / f"{name}.jsonl"
        rows = self.catalog(catalog, name, rng)
        found = []
        for args in (
            ["info", "--json"],
            ["search", "lamp", "--mode", "dense"],
            ["add", "-q", str(catalog)],
            ["check", "--full", "--json"],
        ):
            done = fu.cli(index, *args, unchecked_open=unchecked)
            found.append(self.outcome(tally, args[0], done))
            if args[0] == "add" and done.returncode == 0:
                append(ledgers / f"{name}.ledger", {"n": 0, "op": "put", "items": rows}, {"n": 0, "ack": True})
        detected = "damaged" in found
        tally.notes["detected" if detected else "undetected (the page held nothing checked)"] += 1
        tally.notes[f"{'unchecked' if unchecked else 'checked'} open"] += 1
        if detected:
            if (ledgers / f"{name}.ledger").exists():  # acknowledged after the backup: a restore rolls it back
                (ledgers / f"{name}.ledger").rename(folder / f"{name}.rolled-back")
                tally.notes["acknowledged adds rolled back by the restore"] += len(rows)
            fu.restore_store(backup, index)
        self.judge(tally, index, ledgers, rng, repair_ok=detected)
        tally.notes[f"{what.split()[-1]} page; info, search, add, check --full: {', '.join(found)}"] += 1

    def outcome(self, tally: Tally, what: str, done: subprocess.CompletedProcess[str]) -> str:
        """``ok``, ``damaged`` (exit 1 naming the damage and the backup) or ``crash``."""
        if self.crashed(tally, f"{what} on a damaged store", done):
            return "crash"
        if done.returncode == 0:
            return "ok"
        text = done.stderr + done.stdout
        named = "damaged" in text.lower() or (what == "check" and '"store": ["' in text)
        if done.returncode == 1 and named and "backup" in text:
            return "damaged"
        tally.crashes.append(f"{what} on a damaged store: exit {done.returncode}, unclear: {text.strip()[-300:]}")
        return "unclear"


def append(ledger: Path, *records: dict[str, Any]) -> None:
    with ledger.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds of each fault kind")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--writers", type=int, default=3, help="writer processes of the kill9 rounds")
    parser.add_argument("--span", type=float, default=1.0, help="kill9: most seconds between two kills")
    parser.add_argument("--life", type=int, default=5, help="rounds on one index folder before a new one")
    parser.add_argument("--sample", type=int, default=60, help="random ids per verification searched by exact title")
    parser.add_argument(
        "--disk", choices=["auto", "tmpfs", "inject"], default="auto", help="how disk_full fills the disk"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed on stderr)")
    args = parser.parse_args()
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown --kinds {sorted(unknown)}: use {', '.join(KINDS)}")
    root = Path(tempfile.mkdtemp(prefix="xmodal-faults-"))
    start = time.perf_counter()
    bench = Bench(root, args)
    try:
        for kind in args.kinds:
            run_kind(bench, kind)
        kinds = {kind: {**tally.report(), "expected": EXPECTED[kind]} for kind, tally in bench.tallies.items()}
        failures = [f"{kind}: {', '.join(f)}" for kind, t in bench.tallies.items() if (f := t.failures())]
    finally:  # the reports read the ledgers: only then is the work folder removed
        if args.keep:
            print(f"work folder: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(
        json.dumps(
            {
                "seed": args.seed,
                "rounds": args.rounds,
                "shim": bench.shim is not None,
                "kinds": kinds,
                "failures": failures,
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    )
    sys.exit(1 if failures else 0)


def run_kind(bench: Bench, kind: str) -> None:
    tally = bench.tallies[kind]
    start = time.perf_counter()
    for r in range(bench.args.rounds):
        rng = random.Random(bench.seed(kind, r, "round"))
        try:
            getattr(bench, kind)(tally, r, rng)
        except Exception as exc:  # noqa: BLE001 - a round that could not run is reported, the others go on
            tally.crashes.append(f"round {r}: {type(exc).__name__}: {str(exc)[:300]}")
        tally.rounds += 1
        print(f"{kind} round {r}: {', '.join(tally.failures()) or 'ok'}", file=sys.stderr)
    tally.wall_s = time.perf_counter() - start


if __name__ == "__main__":
    main()
