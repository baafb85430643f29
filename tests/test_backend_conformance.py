"""One conformance suite for every vector backend (:mod:`xmodal.backends`), run unchanged on each.

Backends: ``local`` with the ``exact``, ``hnsw`` and ``auto`` index kinds (auto with a small threshold,
so that it crosses to HNSW inside the tests), ``quantized`` (with a small quantizer training size and
exact-scan limit, so that it retrains and walks its graph inside the tests), the toy third-party
backend of ``tests/toyparts``, reached only by its dotted path, and ``milvus`` (HNSW) on the session's
real Milvus server (the ``milvus_server`` fixture of ``conftest.py``; its address joins the options
through ``SERVER_OPTIONS``). A later backend joins by adding one entry to ``BACKENDS_UNDER_TEST``.

Each test drives the backend the way the engine does: a :class:`Catalog` and the backend follow the same
writes; the backend gets the catalog's attribute table as ``BackendContext.rows`` (a backend that filters
by rows uses it; another evaluates the filter expression itself) and filters as a parsed
:class:`FilterExpr`. Answers are checked against a brute-force reference computed here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal.backends import BACKENDS, BackendContext, VectorBackend, VectorHits, open_backend
from xmodal.catalog import Catalog
from xmodal.errors import ConfigError, ValidationError
from xmodal.filters import FilterExpr
from xmodal.records import Item
from xmodal.store.base import Store, StoredItem
from xmodal.store.sqlite import SQLiteStore

DIM = 16
N = 400
SMALL_HNSW = {"m": 16, "ef_construction": 80, "ef_search": 64}
TOY = "tests.toyparts.backend:ToyBackend"
#: name -> (registry name or dotted path, index kind, index options, exact answers expected)
BACKENDS_UNDER_TEST: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "local-exact": ("local", "exact", {}, True),
    "local-hnsw": ("local", "hnsw", SMALL_HNSW, False),
    "local-auto": ("local", "auto", {"threshold": N // 2, **SMALL_HNSW}, False),
    "toy": (TOY, "auto", {}, True),
    "quantized": ("quantized", "auto", {**SMALL_HNSW, "exact_max": 50, "train_size": 300}, False),
    "quantized-filled": (
        "quantized",
        "auto",
        {**SMALL_HNSW, "exact_max": 50, "train_size": 300, "fill_links": True},
        False,
    ),
    "quantized-ivf": (
        "quantized",
        "auto",
        {"layout": "ivf", "nlist": 8, "nprobe": 4, "exact_max": 50, "train_size": 300},
        False,
    ),
    "milvus": ("milvus", "hnsw", {"m": 16, "ef_construction": 80, "ef": 64}, False),
}
#: name -> options only known once a server runs (the milvus backend's ``uri``), set by the ``h`` fixture.
SERVER_OPTIONS: dict[str, dict[str, Any]] = {}
COLORS = ["red", "green", "blue", "black", "white"]


def unit(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


TEXT, IMAGE, QUERIES, FRESH = unit(N, 1), unit(N, 2), unit(12, 3), unit(60, 4)
ROWS = np.arange(N, dtype=np.int64) * 3 + 7  # sparse rows, like a store's after deletes


def attributes(i: int) -> dict[str, Any]:
    return {"color": COLORS[i % 5], "price": float(i % 40), "stock": i % 7, "sale": i % 3 == 0}


def stored(i: int, vectors: Mapping[str, np.ndarray], attrs: dict[str, Any] | None = None) -> StoredItem:
    item = Item.create(f"i{i}", title=f"item {i}", attributes=attributes(i) if attrs is None else attrs)
    return StoredItem(int(ROWS[i]), item, dict(vectors))  # type: ignore[arg-type]  # kinds are strings


def text_items(idx: Sequence[int]) -> list[StoredItem]:
    return [stored(i, {"text": TEXT[i]}) for i in idx]


def mixed_items(idx: Sequence[int]) -> list[StoredItem]:
    """Odd items have a text and an image vector, even ones only an image vector."""
    return [stored(i, {"image": IMAGE[i], **({"text": TEXT[i]} if i % 2 else {})}) for i in idx]


class Harness:
    """What the engine does around a backend: a catalog and the backend following the same writes."""

    def __init__(self, name: str, folder: Path, dim: int = DIM) -> None:
        self.name = name
        self.spec, self.kind, self.options, self.exact = BACKENDS_UNDER_TEST[name]
        self.options = {**self.options, **SERVER_OPTIONS.get(name, {})}
        self.folder, self.dim = folder, dim
        self.catalog = Catalog()
        self.backend = self.open()
        self.items: dict[int, StoredItem] = {}

    def open(self) -> VectorBackend:
        context = BackendContext(self.folder, self.dim, self.kind, dict(self.options), self.catalog.attributes)
        backend = open_backend(self.spec, context)
        OPENED.append(backend)
        return backend

    def reopen(self) -> VectorBackend:
        self.backend.close()
        self.backend = self.open()
        return self.backend

    def put(self, items: Sequence[StoredItem]) -> None:
        self.catalog.on_put(items)
        self.backend.upsert(items)
        self.items.update((s.row, s) for s in items)

    def delete(self, rows: Sequence[int]) -> None:
        self.catalog.on_delete(rows)
        self.backend.remove(rows)
        for row in rows:
            self.items.pop(int(row), None)

    def search(
        self, queries: np.ndarray, k: int, kinds: Sequence[str] | None = None, filters: dict[str, Any] | None = None
    ) -> list[VectorHits]:
        return self.backend.search(queries, k, kinds, FilterExpr.parse(filters))

    def reference(
        self, query: np.ndarray, k: int, kinds: Sequence[str] | None = None, filters: dict[str, Any] | None = None
    ) -> tuple[list[int], list[float]]:
        """Brute force over the items put: best score per row over the kinds, filter first, k best."""
        where = FilterExpr.parse(filters)
        best: dict[int, float] = {}
        for row, s in self.items.items():
            if where is not None and not where.matches(s.item.attributes):
                continue
            scores = [float(v @ query) for kind, v in s.vectors.items() if kinds is None or kind in kinds]
            if scores:
                best[row] = max(scores)
        top = sorted(best.items(), key=lambda rs: (-rs[1], rs[0]))[:k]
        return [r for r, _ in top], [s for _, s in top]


def milvus_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The session server's address, and one collection for every test: a backend opened on a new folder
    (no checkpoint) empties it, as it does any collection it does not trust (small ones are cleared in
    place, which is faster than making one: ~2 s each on Milvus 2.3)."""
    return {"uri": request.getfixturevalue("milvus_server").uri, "collection": "xmodal_conformance"}


OPENED: list[VectorBackend] = []  # the backends a test opened: closed (a milvus collection dropped) after it


@pytest.fixture(params=list(BACKENDS_UNDER_TEST))
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param not in ("local-exact", "toy", "milvus"):
        pytest.importorskip("faiss", reason="the ANN indexes need faiss-cpu: pip install 'xmodal[ann]'")
    if request.param == "milvus":
        SERVER_OPTIONS["milvus"] = milvus_options(request)
    OPENED.clear()
    yield Harness(str(request.param), tmp_path / "index")
    for backend in OPENED:
        backend.close()
    OPENED.clear()


def check_against_reference(
    h: Harness, k: int, kinds: Sequence[str] | None = None, filters: dict[str, Any] | None = None
) -> None:
    """Every query: as many hits as the reference (k whenever k match), only matching rows, each row
    once, best first; the exact rows and scores for an exact backend, recall@k >= 0.9 otherwise."""
    answers = h.search(QUERIES, k, kinds, filters)
    assert len(answers) == len(QUERIES)
    recalls = []
    for query, (rows, scores, matched) in zip(QUERIES, answers, strict=True):
        ref_rows, ref_scores = h.reference(query, k, kinds, filters)
        assert len(rows) == len(ref_rows) == len(scores) == len(matched)
        assert len(set(rows.tolist())) == len(rows) and np.all(np.diff(scores) <= 1e-6)
        where = FilterExpr.parse(filters)
        for row, kind in zip(rows.tolist(), matched, strict=True):
            item = h.items[row]
            assert where is None or where.matches(item.item.attributes)
            assert kind in item.vectors and (kinds is None or kind in kinds)
        if h.exact:
            assert rows.tolist() == ref_rows and np.allclose(scores, ref_scores, atol=1e-5)
        recalls.append(len(set(rows.tolist()) & set(ref_rows)) / max(1, len(ref_rows)))
    assert float(np.mean(recalls)) >= 0.9


# -- the empty backend -------------------------------------------------------------------------------------
def test_an_empty_backend(h: Harness) -> None:
    backend = h.backend
    assert backend.dim == DIM and backend.saved_seq == 0 and backend.kinds() == [] and backend.count() == 0
    assert backend.count("text") == 0
    answers = h.search(QUERIES[:2], 5)
    assert [len(a.rows) for a in answers] == [0, 0]
    assert h.search(QUERIES[:1], 5, filters={"color": "red"})[0].kinds == []
    assert backend.similarity(QUERIES[0], [1, 2], "text").tolist() == [0.0, 0.0]
    assert backend.checkpoint(0) is False  # nothing to save
    backend.remove([1, 2])  # absent rows: ignored


# -- upsert / replace / remove ---------------------------------------------------------------------------
def test_upsert_counts_and_each_vector_finds_itself(h: Harness) -> None:
    h.put(text_items(range(0, 250)))
    h.put(text_items(range(250, N)))
    assert h.backend.kinds() == ["text"] and h.backend.count("text") == N == h.backend.count()
    rows, scores, kinds = h.search(TEXT[:1], 1)[0]
    assert rows.tolist() == [ROWS[0]] and np.isclose(scores[0], 1.0, atol=1e-4) and kinds == ["text"]
    check_against_reference(h, 10)


def test_upsert_replaces_vectors_and_kinds(h: Harness) -> None:
    h.put(mixed_items(range(N)))
    replaced = [stored(i, {"text": FRESH[i]}) for i in range(60)]  # new text vector; the image vector goes
    h.put(replaced)
    assert h.backend.count("text") == N // 2 + 30 and h.backend.count("image") == N - 60
    for i in (0, 1, 59):
        rows, scores, _ = h.search(FRESH[i : i + 1], 1, ["text"])[0]
        assert rows.tolist() == [ROWS[i]] and np.isclose(scores[0], 1.0, atol=1e-4)
    image_rows = h.search(IMAGE[:60], 5, ["image"])
    assert not any(set(a.rows.tolist()) & set(ROWS[:60].tolist()) for a in image_rows)
    check_against_reference(h, 10)


def test_remove_forgets_every_kind(h: Harness) -> None:
    h.put(mixed_items(range(N)))
    gone = ROWS[:100].tolist()
    h.delete(gone)
    h.backend.remove(gone)  # twice: harmless
    assert h.backend.count("image") == N - 100 and h.backend.count("text") == (N - 100) // 2
    for answer in h.search(np.vstack([TEXT[:20], IMAGE[:20]]), 20):
        assert not set(answer.rows.tolist()) & set(gone)
    check_against_reference(h, 10)


def test_on_put_and_on_delete_follow_the_change_log(h: Harness) -> None:
    items = text_items(range(50))
    h.catalog.on_put(items)
    h.backend.on_put(items)
    h.backend.on_delete([int(ROWS[0])])
    assert h.backend.count("text") == 49
    assert ROWS[0] not in h.search(TEXT[:1], 5)[0].rows


# -- k hits whenever k match; filters before the cut ------------------------------------------------------
@pytest.mark.parametrize(
    "filters",
    [
        None,
        {"color": "red"},  # eq: 20%
        {"color": ["red", "blue"]},  # in
        {"price": {"gte": 10, "lt": 12}},  # range: 5%
        {"sale": True},  # a boolean is not the number 1
        {"stock": 3},  # an int equals its float
        {"color": ["green", "white"], "price": {"lte": 7}, "sale": False},  # combined
    ],
    ids=["none", "eq", "in", "range", "bool", "int", "combined"],
)
def test_filters_apply_before_the_cut(h: Harness, filters: dict[str, Any] | None) -> None:
    h.put(mixed_items(range(N)))
    check_against_reference(h, 15, None, filters)
    check_against_reference(h, 15, ["text"], filters)


def test_k_hits_whenever_k_match_and_fewer_only_when_fewer_match(h: Harness) -> None:
    h.put(text_items(range(N)))
    narrow = {"price": {"gte": 5, "lt": 6}, "color": "red"}  # 5 % 40 and 5 % 5: exactly 10 items
    matching = sum(FilterExpr.parse(narrow).matches(s.item.attributes) for s in h.items.values())  # type: ignore[union-attr]
    assert matching == 10
    assert all(len(a.rows) == 10 for a in h.search(QUERIES, 50, filters=narrow))
    assert all(len(a.rows) == 7 for a in h.search(QUERIES, 7, filters=narrow))
    assert all(len(a.rows) == 0 for a in h.search(QUERIES, 5, filters={"color": "purple"}))
    assert all(len(a.rows) == 50 for a in h.search(QUERIES, 50))


# -- vector kinds -------------------------------------------------------------------------------------------
def test_target_kinds(h: Harness) -> None:
    h.put(mixed_items(range(N)))
    for kinds in (["text"], ["image"], ["text", "image"], None):
        check_against_reference(h, 10, kinds)
    assert all(set(a.kinds) == {"image"} for a in h.search(QUERIES, 10, ["image"]))
    assert [len(a.rows) for a in h.search(QUERIES[:2], 10, ["combined"])] == [0, 0]  # no such vectors


def test_kinds_are_created_on_demand_and_survive_a_checkpoint(h: Harness) -> None:
    assert h.backend.kinds() == []
    h.put(text_items(range(10)))
    assert h.backend.kinds() == ["text"]
    page = unit(5, 9)
    h.put([stored(i, {"text": TEXT[i], "page": page[i - 10]}) for i in range(10, 15)])
    assert sorted(h.backend.kinds()) == ["page", "text"] and h.backend.count("page") == 5
    assert h.search(page[:1], 3, ["page"])[0].rows.tolist()[0] == ROWS[10]
    assert h.backend.checkpoint(15) is True
    reopened = h.reopen()
    assert sorted(reopened.kinds()) == ["page", "text"] and reopened.count("page") == 5 and reopened.saved_seq == 15


# -- similarity -----------------------------------------------------------------------------------------------
def test_similarity_of_rows(h: Harness) -> None:
    h.put(mixed_items(range(40)))
    rows = [int(ROWS[1]), int(ROWS[2]), -1, 999_999, int(ROWS[3])]
    sims = h.backend.similarity(QUERIES[0], rows, "text")
    expected = [float(TEXT[1] @ QUERIES[0]), 0.0, 0.0, 0.0, float(TEXT[3] @ QUERIES[0])]  # item 2 has no text
    assert sims.dtype == np.float32 and np.allclose(sims, expected, atol=1e-5)
    assert h.backend.similarity(QUERIES[0], rows, "nothing").tolist() == [0.0] * 5


# -- checkpoints ------------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


def test_checkpoint_then_reopen_gives_the_same_answers(h: Harness) -> None:
    h.put(mixed_items(range(N)))
    h.delete(ROWS[:10].tolist())
    filters = {"color": ["red", "black"]}
    before = [h.search(QUERIES, 10, kinds, filters) for kinds in (None, ["image"])]
    assert h.backend.checkpoint(42) is True and h.backend.saved_seq == 42
    reopened = h.reopen()
    assert reopened.saved_seq == 42 and reopened.count("image") == N - 10
    after = [h.search(QUERIES, 10, kinds, filters) for kinds in (None, ["image"])]
    for old, new in zip(before, after, strict=True):
        for a, b in zip(old, new, strict=True):
            assert a.rows.tolist() == b.rows.tolist() and np.allclose(a.scores, b.scores, atol=1e-5)
            assert a.kinds == b.kinds
    h.put(text_items(range(5)))  # the reopened backend takes writes
    assert h.search(TEXT[:1], 1)[0].rows.tolist() == [ROWS[0]]


def test_checkpoint_writes_nothing_when_unchanged(h: Harness) -> None:
    h.put(text_items(range(50)))
    assert h.backend.checkpoint(7) is True
    files = snapshot(h.folder)
    assert files, "the checkpoint wrote nothing"
    assert h.backend.checkpoint(7) is False and snapshot(h.folder) == files
    reopened = h.reopen()
    assert reopened.checkpoint(7) is False and snapshot(h.folder) == files  # loaded, unchanged
    h.put(text_items(range(50, 51)))
    assert h.backend.checkpoint(8) is True and h.backend.saved_seq == 8


def test_a_corrupt_or_foreign_checkpoint_starts_empty(h: Harness) -> None:
    h.put(text_items(range(20)))
    h.backend.checkpoint(3)
    other = Harness(h.name, h.folder, dim=DIM * 2)  # a checkpoint of another dimension: rebuild
    assert other.backend.saved_seq == 0 and other.backend.count() == 0
    for path in h.folder.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    assert h.reopen().saved_seq == 0 and h.backend.count() == 0 and h.backend.kinds() == []


# -- bad input ----------------------------------------------------------------------------------------------
def test_dimension_mismatch_is_a_validation_error(h: Harness) -> None:
    h.put(text_items(range(5)))
    with pytest.raises(ValidationError):
        h.put([stored(9, {"text": np.ones(DIM + 1, np.float32) / np.sqrt(DIM + 1)})])
    with pytest.raises(ValidationError):
        h.search(np.ones((1, DIM - 1), np.float32), 3)
    assert h.backend.count("text") == 5


# -- the registry and the Store seam -------------------------------------------------------------------------
def test_the_registry_resolves_names_and_dotted_paths() -> None:
    assert "local" in BACKENDS.names() and BACKENDS.resolve("local").open.__qualname__ == "LocalBackend.open"
    with pytest.raises(ConfigError, match="unknown vector backend 'nosuch'.*local"):
        BACKENDS.resolve("nosuch")
    with pytest.raises(ConfigError, match="not installed.*pip install"):
        BACKENDS.resolve("xmodal_nosuch_pkg.backend:Backend")
    with pytest.raises(ConfigError, match="does not implement"):
        BACKENDS.resolve("xmodal.filters:FilterExpr")


def test_sqlite_store_satisfies_the_store_protocol(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite")
    try:
        assert isinstance(store, Store)
        checked: Store = store  # and statically (mypy)
        assert checked.last_seq() == 0
    finally:
        store.close()
