"""One writer process of the fault-injection benchmark (``bench_faults.py``): random adds, updates, deletes
and checkpoints into an index folder through :class:`xmodal.Engine`, each logged to a ledger before and
after it runs, so that the benchmark knows which writes were acknowledged.

Run:  python benchmarks/faultwriter.py INDEX NAME LEDGER SEED [--ops N] [--stop FILE] [--images P]

Ledger lines (JSON, one per line, flushed at once; a kill -9 leaves at most a missing last line):

- ``{"n": 7, "op": "put", "items": [[id, title, grp, gen, image], ...]}``: about to add or replace items;
- ``{"n": 7, "op": "delete", "ids": [...]}``: about to delete;
- ``{"n": 7, "ack": true}``: the call returned (the write is acknowledged);
- ``{"n": 7, "error": "DiskFull: ..."}``: the call raised (not acknowledged); the writer goes on.

Every item has ``attributes={"writer": NAME, "grp": n // GROUP, "gen": g}`` and a title of two random words
of its own, so a filtered search finds a group of items and an exact-title search one item.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

from xmodal import Engine, Item

GROUP = 25  # ops per ``grp`` value: a filtered search per (writer, grp) returns at most a few hundred items
MAX_BATCH = 20


def token(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=10))


def png(rng: random.Random) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), tuple(rng.randrange(256) for _ in range(3))).save(buf, format="PNG")
    return buf.getvalue()


class Writer:
    def __init__(self, engine: Engine, name: str, ledger: io.TextIOBase, rng: random.Random, images: float) -> None:
        self.engine, self.name, self.ledger, self.rng, self.images = engine, name, ledger, rng, images
        self.live: dict[str, int] = {}  # id -> gen of the acknowledged items this writer holds

    def log(self, record: dict[str, object]) -> None:
        self.ledger.write(json.dumps(record) + "\n")
        self.ledger.flush()

    def step(self, n: int) -> None:
        roll = self.rng.random()
        if roll < 0.12 and self.live:
            self.update(n)
        elif roll < 0.2 and self.live:
            self.delete(n)
        elif roll < 0.24:
            self.run(n, {"op": "checkpoint"}, self.engine.checkpoint)
        else:
            fresh = [f"{self.name}-{n}-{i}" for i in range(self.rng.randint(1, MAX_BATCH))]
            self.put(n, {x: 0 for x in fresh})

    def put(self, n: int, gens: dict[str, int]) -> None:
        rows = [
            [x, f"{token(self.rng)} {token(self.rng)}", n // GROUP, g, self.rng.random() < self.images]
            for x, g in gens.items()
        ]
        items = [
            Item.create(
                x,
                title=title,
                attributes={"writer": self.name, "grp": grp, "gen": g},
                image=png(self.rng) if image else None,
            )
            for x, title, grp, g, image in rows
        ]
        if self.run(n, {"op": "put", "items": rows}, lambda: self.engine.add(items)):
            self.live.update(gens)

    def update(self, n: int) -> None:
        chosen = self.rng.sample(sorted(self.live), min(len(self.live), self.rng.randint(1, 5)))
        self.put(n, {x: self.live[x] + 1 for x in chosen})

    def delete(self, n: int) -> None:
        chosen = self.rng.sample(sorted(self.live), min(len(self.live), self.rng.randint(1, 5)))
        if self.run(n, {"op": "delete", "ids": chosen}, lambda: self.engine.delete(chosen)):
            for x in chosen:
                self.live.pop(x, None)

    def run(self, n: int, intent: dict[str, object], call: Callable[[], object]) -> bool:
        self.log({"n": n, **intent})
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - recorded: the benchmark judges whether it was a clear error
            self.log({"n": n, "error": f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}"})
            time.sleep(0.02)
            return False
        self.log({"n": n, "ack": True})
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("name")
    parser.add_argument("ledger")
    parser.add_argument("seed", type=int)
    parser.add_argument("--ops", type=int, default=0, help="stop after this many ops (0: until killed or --stop)")
    parser.add_argument("--stop", default=None, help="stop (closing the engine) once this file exists")
    parser.add_argument("--images", type=float, default=0.1, help="share of new items with a small PNG")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stop = Path(args.stop) if args.stop else None
    with open(args.ledger, "a", encoding="utf-8") as ledger:
        writer = Writer(Engine.open(args.index), args.name, ledger, rng, args.images)
        writer.live, first = resume(Path(args.ledger))
        n = first
        try:
            while not (args.ops and n >= first + args.ops) and not (stop and stop.exists()):
                writer.step(n)
                n += 1
        finally:
            writer.engine.close()
    sys.exit(0)


def resume(ledger: Path) -> tuple[dict[str, int], int]:
    """What an earlier run of this writer left: its acknowledged live items (updated and deleted too) and the
    number of its next op (ids stay unique)."""
    from faultcheck import read_ledger  # benchmarks/ is on sys.path: this script runs from there

    ledger_ = read_ledger(ledger)
    live = {x: h.acked_gen() for x, h in ledger_.ids.items() if h.acked_gen() is not None}
    return live, ledger_.next_op  # type: ignore[return-value]


if __name__ == "__main__":
    main()
