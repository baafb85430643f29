"""A toy vector backend from outside the package, named only by its dotted path (never registered).

Brute-force NumPy over dicts, its own checkpoint (``toy.json`` plus one ``.npy`` per kind), and filters
evaluated by itself on the attributes it keeps: it translates the engine's :class:`FilterExpr` into its
own "filter language" (a predicate per condition) from the documented contract alone, with no attribute
table — what a database backend does with its own query language.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.backends import BackendContext, VectorHits
from xmodal.errors import ValidationError
from xmodal.filters import And, Condition, FilterExpr, Node, Not
from xmodal.store.base import StoredItem

NAME = "tests.toyparts.backend:ToyBackend"
STATE = "toy.json"
Predicate = Callable[[Mapping[str, Any]], bool]


class ToyBackend:
    """Vectors per kind in dicts keyed by row; every search scans them all."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder, self._dim = folder, dim
        self._vectors: dict[str, dict[int, np.ndarray]] = {}
        self._attributes: dict[int, dict[str, Any]] = {}
        self._saved_seq, self._dirty = 0, False
        self.writes = 0  # how many checkpoints were written (tests read it)

    @classmethod
    def open(cls, context: BackendContext) -> ToyBackend:
        backend = cls(context.folder, context.dim)
        try:
            backend._load()
        except (OSError, ValueError, KeyError, TypeError):
            backend = cls(context.folder, context.dim)  # missing or unreadable: start empty, seq 0
        return backend

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def saved_seq(self) -> int:
        return self._saved_seq

    def kinds(self) -> list[str]:
        return sorted(kind for kind, rows in self._vectors.items() if rows)

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return sum(len(rows) for rows in self._vectors.values())
        return len(self._vectors.get(kind, {}))

    # -- writes --------------------------------------------------------------------------------------
    def upsert(self, stored: Sequence[StoredItem]) -> None:
        for s in stored:
            for kind, vector in s.vectors.items():
                if np.asarray(vector).shape != (self._dim,):
                    raise ValidationError(f"vectors.{kind}", f"has shape {np.shape(vector)}", f"give {self._dim}")
        for s in stored:
            self._forget(s.row)
            self._attributes[s.row] = dict(s.item.attributes)
            for kind, vector in s.vectors.items():
                self._vectors.setdefault(str(kind), {})[s.row] = np.asarray(vector, np.float32)
        self._dirty = self._dirty or bool(stored)

    def remove(self, rows: Sequence[int]) -> None:
        for row in rows:
            self._forget(int(row))
        self._dirty = self._dirty or bool(len(rows))

    def _forget(self, row: int) -> None:
        self._attributes.pop(row, None)
        for vectors in self._vectors.values():
            vectors.pop(row, None)

    on_put = upsert
    on_delete = remove

    # -- reads ---------------------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, kinds: Sequence[str] | None = None, where: FilterExpr | None = None
    ) -> list[VectorHits]:
        queries = np.asarray(queries, np.float32).reshape(len(queries), -1)
        if queries.shape[1] != self._dim:
            raise ValidationError("queries", f"have {queries.shape[1]} dimensions", f"give {self._dim}")
        keep = translate(where)
        names = self.kinds() if kinds is None else [str(kind) for kind in kinds]
        columns = []
        for kind in names:
            rows = [row for row in self._vectors.get(kind, {}) if keep(self._attributes.get(row, {}))]
            if rows:
                columns.append((kind, rows, np.stack([self._vectors[kind][row] for row in rows])))
        return [self._best(query, columns, k) for query in queries]

    @staticmethod
    def _best(query: np.ndarray, columns: list[tuple[str, list[int], np.ndarray]], k: int) -> VectorHits:
        best: dict[int, tuple[float, str]] = {}
        for kind, rows, matrix in columns:
            for row, score in zip(rows, (matrix @ query).tolist(), strict=True):
                if row not in best or score > best[row][0]:
                    best[row] = (score, kind)
        top = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:k]
        return VectorHits(
            np.array([row for row, _ in top], np.int64),
            np.array([score for _, (score, _) in top], np.float32),
            [kind for _, (_, kind) in top],
        )

    def similarity(self, vector: np.ndarray, rows: Sequence[int], kind: str) -> np.ndarray:
        vectors, query = self._vectors.get(kind, {}), np.asarray(vector, np.float32).ravel()
        return np.array([float(vectors[r] @ query) if r in vectors else 0.0 for r in rows], np.float32)

    # -- persistence ---------------------------------------------------------------------------------
    def checkpoint(self, seq: int) -> bool:
        if seq == self._saved_seq and not self._dirty:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        kinds = self.kinds()
        for kind in kinds:
            rows = sorted(self._vectors[kind])
            np.save(self.folder / f"{kind}.rows.npy", np.array(rows, np.int64))
            np.save(self.folder / f"{kind}.npy", np.stack([self._vectors[kind][row] for row in rows]))
        state = {"seq": seq, "dim": self._dim, "kinds": kinds, "attributes": self._attributes}
        tmp = self.folder / (STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.folder / STATE)
        self._saved_seq, self._dirty = seq, False
        self.writes += 1
        return True

    def _load(self) -> None:
        state = json.loads((self.folder / STATE).read_text())
        if state["dim"] != self._dim:
            raise ValueError("another dimension")
        self._attributes = {int(row): attrs for row, attrs in state["attributes"].items()}
        for kind in state["kinds"]:
            rows = np.load(self.folder / f"{kind}.rows.npy", allow_pickle=False)
            matrix = np.load(self.folder / f"{kind}.npy", allow_pickle=False).astype(np.float32)
            self._vectors[kind] = {int(r): v for r, v in zip(rows, matrix, strict=True)}
        self._saved_seq = int(state["seq"])

    def close(self) -> None:
        pass


# -- the toy's own "filter language": a predicate per node, from the documented contract ----------------
def translate(where: FilterExpr | None) -> Predicate:
    """The expression's tree as one predicate on an item's (nested) attributes."""
    if where is None:
        return lambda attributes: True
    return _node(where.root)


def _node(node: Node) -> Predicate:
    if isinstance(node, Condition):
        return _condition(node)
    if isinstance(node, Not):
        inner = _node(node.part)
        return lambda attributes: not inner(attributes)
    parts = [_node(part) for part in node.parts]
    if isinstance(node, And):
        return lambda attributes: all(part(attributes) for part in parts)
    return lambda attributes: any(part(attributes) for part in parts)


def _condition(cond: Condition) -> Predicate:
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}
    wanted = set(cond.values)

    def test(attributes: Mapping[str, Any]) -> bool:
        found = _found(attributes, cond.attribute.split("."))
        keys = {_key(s) for s in _scalars(found)}
        numbers = [float(s) for s in _scalars(found) if isinstance(s, (int, float)) and not isinstance(s, bool)]
        strings = [s for s in _scalars(found) if isinstance(s, str)]
        return {
            "in": lambda: bool(keys & wanted),
            "nin": lambda: bool(found) and not keys & wanted,
            "all": lambda: bool(found) and wanted <= keys,
            "range": lambda: any(all(compare[op](n, bound) for op, bound in cond.bounds) for n in numbers),
            "exists": lambda: bool(found),
            "empty": lambda: all(v is None or v in ("", [], {}) for v in found),
            "text": lambda: any(cond.text in s for s in strings),
            "itext": lambda: any(cond.text.casefold() in s.casefold() for s in strings),
        }[cond.op]()

    return test


def _found(node: Any, parts: list[str]) -> list[Any]:
    """The values at a dotted path: names joined by dots may be one key or nested keys; lists on the way
    are entered element by element."""
    if isinstance(node, list):
        return [v for element in node for v in _found(element, parts)]
    if not isinstance(node, Mapping):
        return []
    out = []
    for cut in range(1, len(parts) + 1):
        key = ".".join(parts[:cut])
        if key in node:
            out += [node[key]] if cut == len(parts) else _found(node[key], parts[cut:])
    return out


def _scalars(values: list[Any]) -> list[Any]:
    out = []
    for value in values:
        if isinstance(value, list):
            out += _scalars(value)
        elif not isinstance(value, Mapping):
            out.append(value)
    return out


def _key(value: object) -> tuple[str, object]:
    if value is None:
        return ("z", None)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    return ("s", str(value))
