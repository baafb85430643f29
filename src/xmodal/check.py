"""The consistency check of an index folder (``xmodal check``): the store against what is derived from it.

It compares, after catching the engine up with the change log:

- the store file itself: SQLite's ``quick_check`` (``integrity_check`` with ``full``);
- the items: the store's rows against the engine's catalog;
- per vector kind: the store's vectors against the backend's (counts, and the row sets where the backend
  lists them, :class:`~xmodal.backends.RowListing`);
- the extensions: the store sequence each reflects against the one the engine applied.

A mismatch of derived data (a checkpoint that claimed changes it did not hold) is repaired by
:meth:`Engine.rebuild <xmodal.engine.Engine.rebuild>` (``--repair``); a damaged store is not derived
data: the report says how to recover it (:func:`xmodal.store.health.recovery`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import RowListing
from .engine import Engine
from .store.health import recovery

SAMPLE = 10  # rows listed per mismatch (the counts are always whole)
ATTEMPTS = 3  # another process writing during the check: compare again on a steadier view


@dataclass(frozen=True, slots=True)
class RowsCheck:
    """One comparison of the store's rows with a derived structure's (items, or the vectors of a kind)."""

    name: str
    store: int
    derived: int
    missing: int = 0  # rows in the store that the derived structure lacks
    extra: int = 0  # rows the derived structure holds that the store does not
    sample_missing: list[int] = field(default_factory=list)
    sample_extra: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.store == self.derived and not self.missing and not self.extra

    def problem(self) -> str:
        """One line: what differs (empty when nothing does)."""
        if self.ok:
            return ""
        parts = [f"{self.name}: the store has {self.store}, the index {self.derived}"]
        if self.missing:
            parts.append(f"{self.missing} missing (rows {_rows(self.sample_missing, self.missing)})")
        if self.extra:
            parts.append(f"{self.extra} not in the store (rows {_rows(self.sample_extra, self.extra)})")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ExtensionCheck:
    """The store sequence an extension reflects, against the one the engine applied."""

    name: str
    seq: int
    applied_seq: int

    @property
    def ok(self) -> bool:
        return self.seq >= self.applied_seq

    def problem(self) -> str:
        return "" if self.ok else f"extension {self.name}: reflects change {self.seq}, the index {self.applied_seq}"


@dataclass(slots=True)
class CheckReport:
    """What ``xmodal check`` found (and, with ``--repair``, did). ``ok``: nothing is wrong."""

    path: str
    full: bool
    store: list[str] = field(default_factory=list)  # what SQLite's check found wrong in store.sqlite
    rows: list[RowsCheck] = field(default_factory=list)  # items, then each vector kind
    extensions: list[ExtensionCheck] = field(default_factory=list)
    store_seq: int | None = None
    applied_seq: int | None = None
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """One line per thing wrong."""
        lines = [f"store.sqlite: {line}" for line in self.store]
        lines += [c.problem() for c in self.rows if not c.ok]
        lines += [c.problem() for c in self.extensions if not c.ok]
        return lines

    def fix(self) -> str:
        """What to do about the problems found (empty when there are none)."""
        if self.store:
            return recovery(Path(self.path) / "store.sqlite")
        if not self.ok:
            return f"run `xmodal --index {self.path} check --repair` to rebuild the derived data from the store"
        return ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ok=self.ok, problems=self.problems(), fix=self.fix())
        return data


def damaged(path: Path, problems: list[str], *, full: bool) -> CheckReport:
    """The report on a store that cannot be opened."""
    return CheckReport(str(path), full, store=list(problems))


def check(engine: Engine, *, full: bool = False) -> CheckReport:
    """Compare the engine's store with its derived structures (after catching up with the change log)."""
    report = CheckReport(str(engine.path), full, store=engine.store.integrity(full=full))
    if report.store:
        return report  # a damaged store: comparing with it would say nothing true
    for _ in range(ATTEMPTS):
        before = engine.store.last_seq()
        engine.refresh()
        report.rows = _compare(engine)
        report.extensions = [ExtensionCheck(n, s, engine.applied_seq()) for n, s in engine.extension_seqs().items()]
        report.store_seq, report.applied_seq = engine.store.last_seq(), engine.applied_seq()
        if report.store_seq == before:  # nobody wrote meanwhile: the comparison is of one state
            break
    return report


def repair(engine: Engine, *, full: bool = False) -> CheckReport:
    """Check, rebuild the derived data when something differs, and check again (``repaired`` says what
    was done). A damaged store is left as it is: the report's fix says how to recover it."""
    report = check(engine, full=full)
    if report.ok or report.store:
        return report
    before = report.problems()
    engine.rebuild()
    after = check(engine, full=full)
    after.repaired = [f"rebuilt from the store: {line}" for line in before]
    return after


def _compare(engine: Engine) -> list[RowsCheck]:
    store = engine.store
    checks = [_rows_check("items", np.asarray(store.catalog_rows().rows, np.int64), engine.all_rows(), None)]
    backend, vectors = engine.backend, store.vector_rows()
    for kind in sorted(set(vectors) | set(backend.kinds())):
        held = backend.rows(kind) if isinstance(backend, RowListing) else None
        stored = vectors.get(kind, np.empty(0, np.int64))
        checks.append(_rows_check(f"{kind} vectors", stored, held, backend.count(kind)))
    return checks


def _rows_check(name: str, stored: np.ndarray, held: np.ndarray | None, count: int | None) -> RowsCheck:
    """Compare row sets (``held`` None: only the ``count`` is known)."""
    if held is None:
        return RowsCheck(name, len(stored), int(count or 0))
    missing = np.setdiff1d(stored, held)
    extra = np.setdiff1d(held, stored)
    return RowsCheck(
        name,
        len(stored),
        len(held) if count is None else count,
        len(missing),
        len(extra),
        [int(r) for r in missing[:SAMPLE]],
        [int(r) for r in extra[:SAMPLE]],
    )


def _rows(sample: list[int], total: int) -> str:
    listed = ", ".join(map(str, sample))
    return listed + (", …" if total > len(sample) else "")
