"""The judge of the fault-injection benchmark: what the writers' ledgers say must be in an index folder, and
whether it is there *and searchable*.

An id's history is every op on it, in order, each acknowledged or not (killed in flight, or it raised).
What the store may hold for it: the state after its last acknowledged op, or after any unacknowledged op
that came later (an op that did not return may or may not have been committed). Anything else is a lost
write (an acknowledged put missing or stale), a resurrected one (an acknowledged delete undone) or a
phantom (a state no one wrote).

Searchable: every present item comes back from a dense search filtered to its ``(writer, grp)`` group,
and a sample (the latest items of each writer's last two ops, plus random ones) from a search for its exact
title, in the top 5, in dense mode and (fewer: it is slower) in the index's default mode (``learned``: the
extensions' state too).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from xmodal import Engine, Query
from xmodal.records import MAX_K

State = tuple[str, int, int, bool] | None  # (title, grp, gen, has image); None: absent (deleted, never written)
TOP = 5  # an exact-title search must return the item among this many hits
RECENT = 20  # ids of each ledger's last two ops searched by exact title (the latest of them)


@dataclass
class History:
    """The ops on one id: (state after the op, acknowledged)."""

    writer: str
    ops: list[tuple[State, bool]] = field(default_factory=list)

    def allowed(self) -> set[State]:
        last = max((i for i, (_, acked) in enumerate(self.ops) if acked), default=-1)
        base: State = self.ops[last][0] if last >= 0 else None
        return {base, *(state for state, _ in self.ops[last + 1 :])}

    def acked_state(self) -> State:
        return next((state for state, acked in reversed(self.ops) if acked), None)

    def acked(self) -> bool:
        return any(acked for _, acked in self.ops)

    def acked_gen(self) -> int | None:
        state = self.acked_state()
        return None if state is None else state[2]


@dataclass
class Ledger:
    """Every id's history from one or more ledger files, and counts of the ops."""

    ids: dict[str, History] = field(default_factory=dict)
    next_op: int = 0
    acked_writes: int = 0  # item-level puts and deletes acknowledged
    unacked_ops: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # exception type -> count
    recent: set[str] = field(default_factory=set)  # ids of each writer's last two ops


def read_ledger(*paths: Path) -> Ledger:
    ledger = Ledger()
    for path in paths:
        if path.exists():
            _read_one(path, ledger)
    return ledger


def _read_one(path: Path, ledger: Ledger) -> None:
    intents: dict[int, dict[str, object]] = {}
    outcome: dict[int, bool] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by kill -9
        n = int(record["n"])
        ledger.next_op = max(ledger.next_op, n + 1)
        if "op" in record:
            intents[n] = record
        elif "ack" in record:
            outcome[n] = True
        elif "error" in record:
            outcome[n] = False
            ledger.errors[str(record["error"]).split(":", 1)[0]] += 1
    writer = path.stem
    ordered = sorted(intents)
    for n in ordered:
        acked = outcome.get(n, False)
        ledger.unacked_ops += not acked
        for item_id, state in _states(intents[n]):
            ledger.ids.setdefault(item_id, History(writer)).ops.append((state, acked))
            ledger.acked_writes += acked
    last = [item_id for n in ordered[-2:] for item_id, _ in _states(intents[n])]
    ledger.recent.update(last[-RECENT:])


def _states(record: dict[str, object]) -> Iterable[tuple[str, State]]:
    if record["op"] == "put":
        for item_id, title, grp, gen, image in record["items"]:  # type: ignore[attr-defined]
            yield item_id, (title, grp, gen, bool(image))
    elif record["op"] == "delete":
        for item_id in record["ids"]:  # type: ignore[attr-defined]
            yield item_id, None


@dataclass
class Verdict:
    """What one verification found (lists of ids)."""

    checked: int = 0  # ids with a history
    acked_present: int = 0  # acknowledged puts that must be (and were) present
    lost: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    unsearchable: list[str] = field(default_factory=list)  # acknowledged and present, a search missed it
    unsearchable_unacked: list[str] = field(default_factory=list)
    targeted: int = 0  # exact-title searches run
    misses: Counter[str] = field(default_factory=Counter)  # search -> ids it missed ("filtered", or the mode)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.resurrected or self.phantom or self.unsearchable or self.unsearchable_unacked)


def stored_state(item: object) -> State:
    attrs = item.attributes  # type: ignore[attr-defined]
    return (item.title, attrs.get("grp"), attrs.get("gen"), "image" in item.media)  # type: ignore[attr-defined]


def verify(index: Path, ledger: Ledger, rng: random.Random, sample: int = 60) -> Verdict:
    """Open the index (a fresh engine: it catches up from the change log) and judge it against ``ledger``: the
    recent ids and ``sample`` random ones are searched by exact title in dense mode, the recent ones and a
    sixth of the sample in the default mode too (slower)."""
    verdict = Verdict(checked=len(ledger.ids))
    with Engine.open(index) as engine:
        store = {s.item.id: s.item for s in engine.store.iter_all()}
        present = _judge_store(store, ledger, verdict)
        _filtered(engine, store, present, ledger, verdict)
        recent = [x for x in present if x in ledger.recent]
        others = sorted(set(present) - set(recent))
        chosen = rng.sample(others, min(sample, len(others)))
        dense_only = set(chosen[sample // 6 :])
        for item_id in recent + chosen:
            for mode in ("dense",) if item_id in dense_only else ("dense", engine.default_mode):
                hits = engine.search(Query(text=store[item_id].title, k=TOP, mode=mode)).hits.ids.tolist()
                verdict.targeted += 1
                if item_id not in hits:
                    _miss(verdict, ledger, item_id, mode)
    return verdict


def _judge_store(store: dict[str, object], ledger: Ledger, verdict: Verdict) -> list[str]:
    """Classify every id; returns the ids present in the store with a state someone wrote."""
    present = []
    for item_id in sorted(set(store) | set(ledger.ids)):
        history = ledger.ids.get(item_id)
        state = stored_state(store[item_id]) if item_id in store else None
        if history is None:
            verdict.phantom.append(item_id)
        elif state in history.allowed():
            if state is not None:
                present.append(item_id)
                verdict.acked_present += history.acked_state() is not None
        elif history.acked_state() is not None:
            verdict.lost.append(item_id)
        elif history.acked():
            verdict.resurrected.append(item_id)
        else:
            verdict.phantom.append(item_id)
    return present


def _filtered(engine: Engine, store: dict[str, object], present: list[str], ledger: Ledger, verdict: Verdict) -> None:
    groups: dict[tuple[str, int], list[str]] = {}
    for item_id in present:
        attrs = store[item_id].attributes  # type: ignore[attr-defined]
        groups.setdefault((attrs["writer"], attrs["grp"]), []).append(item_id)
    for (writer, grp), ids in groups.items():
        k = min(MAX_K, len(ids) + 10)
        found = engine.search(Query(text="lamp", k=k, filters={"writer": writer, "grp": grp}, mode="dense"))
        hits = set(found.hits.ids.tolist())
        for item_id in ids:
            if item_id not in hits:
                _miss(verdict, ledger, item_id, "filtered")


def _miss(verdict: Verdict, ledger: Ledger, item_id: str, search: str) -> None:
    verdict.misses[search] += 1
    acked = ledger.ids[item_id].acked_state() is not None
    target = verdict.unsearchable if acked else verdict.unsearchable_unacked
    if item_id not in target:
        target.append(item_id)


def summary(verdict: Verdict) -> dict[str, object]:
    """The verdict as JSON: counts, and the ids of each kind of failure."""
    out: dict[str, object] = {"ok": verdict.ok, "checked": verdict.checked, "acked_present": verdict.acked_present}
    out["targeted"], out["misses"] = verdict.targeted, dict(verdict.misses)
    for name in ("lost", "resurrected", "phantom", "unsearchable", "unsearchable_unacked"):
        ids = getattr(verdict, name)
        out[name], out[f"{name}_ids"] = len(ids), ids
    return out


def main() -> None:
    """Judge an index against the ledgers of a folder in a process of its own; prints :func:`summary`."""
    import argparse

    parser = argparse.ArgumentParser(description="verify an index folder against fault-benchmark ledgers")
    parser.add_argument("index", type=Path)
    parser.add_argument("ledgers", type=Path, help="folder of *.ledger files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=100)
    args = parser.parse_args()
    ledger = read_ledger(*sorted(args.ledgers.glob("*.ledger")))
    print(json.dumps(summary(verify(args.index, ledger, random.Random(args.seed), args.sample))))


if __name__ == "__main__":
    main()
