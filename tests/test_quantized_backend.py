"""The ``quantized`` backend beyond the conformance suite (which it passes unchanged): codes in memory and
full vectors memory-mapped from disk, exact scores from rescoring, parts linked (not copied) from one
checkpoint to the next, plain files, the filtered-search guarantees on the graph walk as on the scan, the
quantizer retrained as an index grows, two processes checkpointing one folder, and the CLI and the engine
running an index on it. Each test runs on both layouts (``hnsw``: a graph over the codes; ``ivf``: inverted
lists of codes) unless it is about one of them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

faiss = pytest.importorskip("faiss", reason="the quantized backend needs faiss-cpu: pip install 'xmodal[ann]'")

from tests.test_third_party import cli  # noqa: E402
from xmodal import Engine, Item, Query  # noqa: E402
from xmodal.backends import BackendContext, open_backend  # noqa: E402
from xmodal.backends.quantized import QuantizedBackend  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import ConfigError  # noqa: E402
from xmodal.filters import FilterExpr  # noqa: E402
from xmodal.index.hnsw import HNSWIndex  # noqa: E402
from xmodal.index.quantized import QuantizedIndex  # noqa: E402
from xmodal.index.quantized_ivf import QuantizedIVFIndex  # noqa: E402
from xmodal.records import Item as ItemRecord  # noqa: E402
from xmodal.store.sqlite import StoredItem  # noqa: E402

DIM = 32
ITEM = ItemRecord.create("x", title="x")


def unit(n: int, seed: int) -> np.ndarray:
    """Clustered unit vectors (a realistic case for a quantizer: not uniform on the sphere)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 20, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


class Rows:
    """The engine's attribute table, reduced to what a backend asks of it."""

    def __init__(self) -> None:
        self.attrs: dict[int, Mapping[str, Any]] = {}

    def match_expr(self, where: FilterExpr) -> np.ndarray:
        return np.array(sorted(r for r, a in self.attrs.items() if where.matches(a)), dtype=np.int64)


@pytest.fixture(params=["hnsw", "ivf"])
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backend(folder: Path, rows: Rows | None = None, **options: Any) -> QuantizedBackend:
    opened = open_backend("quantized", BackendContext(folder, DIM, "auto", options, rows or Rows()))
    assert isinstance(opened, QuantizedBackend)
    return opened


def put(b: QuantizedBackend, vectors: np.ndarray, start: int = 0, rows: Rows | None = None) -> None:
    b.upsert([StoredItem(start + i, ITEM, {"text": v}) for i, v in enumerate(vectors)])  # type: ignore[dict-item]
    if rows is not None:
        rows.attrs.update((r, {"group": r % 10, "rare": r % 50 == 0}) for r in range(start, start + len(vectors)))


def index_of(b: QuantizedBackend) -> QuantizedIndex:
    index = b.indexes["text"]
    assert isinstance(index, QuantizedIndex)
    return index


def exact(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[int]]:
    rows = np.arange(len(vectors)) if allowed is None else allowed
    scores = queries @ vectors[rows].T
    return [rows[np.argsort(-s, kind="stable")[:k]].tolist() for s in scores]


def test_codes_in_memory_full_vectors_from_disk_and_exact_scores(tmp_path: Path, layout: str) -> None:
    data, queries = unit(2000, 1), unit(20, 2)
    b = backend(tmp_path / "index", layout=layout)
    put(b, data)
    index = index_of(b)
    assert index._code_size() == DIM  # 8-bit codes: one byte per dimension (float32: four)
    assert index.vectors.unsaved == 2000  # not yet checkpointed: held in memory
    assert b.checkpoint(1)
    assert index.vectors.unsaved == 0 and index.vectors.parts == 1
    part = index.vectors._parts[0]
    assert isinstance(part.rows, np.memmap) and not part.rows.flags.writeable
    assert (tmp_path / "index" / "text" / part.name).is_file()
    # the graph's own scores come from the lossy codes; the backend's are the exact inner products
    code_scores, _ = index._graph.search(queries, 5)
    answers = b.search(queries, 5)
    for q, answer in zip(queries, answers, strict=True):
        assert np.allclose(answer.scores, data[answer.rows] @ q, atol=1e-6)
    assert not np.allclose(code_scores, np.stack([a.scores for a in answers]), atol=1e-6)
    truth = exact(data, queries, 5)
    assert np.mean([len(set(a.rows.tolist()) & set(t)) / 5 for a, t in zip(answers, truth, strict=True)]) >= 0.95


def test_checkpoints_link_parts_merge_small_ones_and_record_what_they_hold(tmp_path: Path, layout: str) -> None:
    data = unit(5300, 3)
    folder = tmp_path / "index"
    b = backend(folder, layout=layout)
    put(b, data[:1000])
    b.checkpoint(1)
    put(b, data[1000:5000], 1000)
    b.checkpoint(2)  # 4,000 new rows >= the 1,000 part: merged into one part
    index = index_of(b)
    assert index.vectors.parts == 1
    first = index.vectors._parts[0].name
    inode = (folder / "text" / first).stat().st_ino
    put(b, data[5000:5100], 5000)
    b.checkpoint(3)  # 100 new rows: a second part; the first is linked, not copied
    assert [p.name for p in index.vectors._parts][0] == first and index.vectors.parts == 2
    assert (folder / "text" / first).stat().st_ino == inode
    put(b, data[5100:], 5100)  # never checkpointed: a reopen holds what checkpoint 3 recorded
    reopened = backend(folder, layout=layout)
    assert reopened.saved_seq == 3 and reopened.count("text") == 5100
    for q in data[[0, 4999, 5099]]:
        rows, scores, _ = reopened.search(q[None, :], 3)[0]
        assert np.isclose(scores[0], 1.0, atol=1e-5) and np.allclose(scores, data[rows] @ q, atol=1e-6)


def test_the_checkpoint_is_plain_inspectable_files(tmp_path: Path, layout: str) -> None:
    b = backend(tmp_path / "index", layout=layout)
    put(b, unit(300, 4))
    b.checkpoint(9)
    state = json.loads((tmp_path / "index" / "state.json").read_text())
    assert state["seq"] == 9 and state["backend"] == "quantized" and state["kinds"] == ["text"]
    manifest = json.loads((tmp_path / "index" / "text" / "manifest.json").read_text())
    kind, graph_class = (
        ("quantized", faiss.IndexHNSWSQ) if layout == "hnsw" else ("quantized-ivf", faiss.IndexIVFScalarQuantizer)
    )
    assert manifest["kind"] == kind and manifest["format_version"] == 1 and manifest["count"] == 300
    assert manifest["options"]["quantizer"] == "sq8" and manifest["code_size"] == DIM
    assert state["index_options"] == {"layout": layout}
    assert [part["rows"] for part in manifest["vectors"]["parts"]] == [300]
    for path in (tmp_path / "index").rglob("*"):
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # no pickled objects anywhere
        elif path.suffix == ".faiss":
            assert isinstance(faiss.read_index(str(path)), graph_class)
        else:
            assert path.suffix == ".json" or path.is_dir(), path


@pytest.mark.parametrize(
    ("where", "matching"),
    [({"group": [0, 1, 2, 3]}, 1200), ({"rare": True}, 60)],
    ids=["walk-40pct", "scan-2pct"],
)
def test_filtered_search_gives_k_matching_hits_on_the_walk_and_on_the_scan(
    tmp_path: Path, layout: str, where: dict[str, Any], matching: int
) -> None:
    """40% allowed: the graph walk restricted to them (exact_max 0); 2%: the exact scan of their codes.
    Both: k hits, only allowed rows, exact scores; all of them when fewer than k match."""
    data, queries = unit(3000, 5), unit(30, 6)
    rows = Rows()
    b = backend(tmp_path / "index", rows, layout=layout, exact_max=0, exact_fraction=0.1)
    put(b, data, rows=rows)
    expr = FilterExpr.parse(where)
    assert expr is not None
    allowed = rows.match_expr(expr)
    assert len(allowed) == matching
    k = 20
    answers = b.search(queries, k, where=expr)
    recalls = []
    for q, answer, truth in zip(queries, answers, exact(data, queries, k, allowed), strict=True):
        assert len(answer.rows) == k and set(answer.rows.tolist()) <= set(allowed.tolist())
        assert np.allclose(answer.scores, data[answer.rows] @ q, atol=1e-6)
        recalls.append(len(set(answer.rows.tolist()) & set(truth)) / k)
    assert np.mean(recalls) >= 0.95
    assert all(len(a.rows) == min(100, matching) for a in b.search(queries[:3], 100, where=expr))


def test_the_quantizer_is_retrained_as_the_index_grows_and_compaction_reads_full_vectors(
    tmp_path: Path, layout: str
) -> None:
    data = unit(1200, 7)
    b = backend(tmp_path / "index", layout=layout, train_size=500)
    put(b, data[:10])
    index = index_of(b)
    assert index.trained_on == 10
    for start in range(10, 1200, 100):
        put(b, data[start : start + 100], start)
    assert index.trained_on == 500 and index.tombstones == 0
    gone = list(range(0, 1200, 3)) + list(range(1, 1200, 3))  # two thirds: past the compaction ratio
    b.remove(gone)
    assert index.tombstones == 0 and b.count("text") == 400  # compacted: the graph rebuilt
    kept = np.arange(2, 1200, 3)
    for q in data[kept[:5]]:
        rows, scores, _ = b.search(q[None, :], 5)[0]
        assert set(rows.tolist()) <= set(kept.tolist())
        assert np.isclose(scores[0], 1.0, atol=1e-6) and np.allclose(scores, data[rows] @ q, atol=1e-6)


def test_two_processes_checkpointing_one_folder_lose_nothing(tmp_path: Path, layout: str) -> None:
    folder, data = tmp_path / "index", unit(400, 8)
    first = backend(folder, layout=layout)
    put(first, data[:100])
    first.checkpoint(1)
    a, b = backend(folder, layout=layout), backend(folder, layout=layout)  # both map the 100-row part
    put(b, data[100:300], 100)
    b.checkpoint(2)  # merges that part into a new one: its file leaves the folder
    put(a, data[300:310], 300)
    a.checkpoint(3)  # its own view: the part B dropped is written again from A's mapping
    reopened = backend(folder, layout=layout)
    assert reopened.saved_seq == 3 and reopened.count("text") == 110
    for i in (0, 99, 305):
        rows, scores, _ = reopened.search(data[i : i + 1], 1)[0]
        assert rows.tolist() == [i] and np.isclose(scores[0], 1.0, atol=1e-6)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    for options, message in (
        ({"quantizer": "pq"}, "quantizer must be one of"),
        ({"rescore": 0}, "rescore must be a positive integer"),
        ({"nosuch": 1}, "unknown quantized index option"),
        ({"m": 0}, "m must be a positive integer"),
        ({"fill_links": 1}, "fill_links must be true or false"),
    ):
        with pytest.raises(ConfigError, match=message):
            backend(tmp_path / "index", **options)
    for options, message in (
        ({"layout": "pq"}, "layout must be one of"),
        ({"layout": "ivf", "nlist": 0}, "nlist must be a positive integer"),
        ({"layout": "ivf", "nprobe": "8"}, "nprobe must be a positive integer"),
        ({"layout": "ivf", "ef_search": 64}, "belong to the hnsw layout"),
        ({"layout": "ivf", "fill_links": True}, "belong to the hnsw layout"),
        ({"layout": "ivf", "coarse": "ivf"}, "coarse must be one of"),
        ({"layout": "ivf", "kmeans_iters": -1}, "kmeans_iters must be a non-negative integer"),
        ({"layout": "ivf", "coarse_ef": 0}, "coarse_ef must be a positive integer"),
        ({"layout": "hnsw", "nprobe": 8}, "unknown quantized index option"),
    ):
        with pytest.raises(ConfigError, match=message):
            backend(tmp_path / "index", **options)
    with pytest.raises(ConfigError, match="builds its own index"):
        open_backend("quantized", BackendContext(tmp_path / "index", DIM, "hnsw", {}, None))


def test_the_cli_and_the_engine_run_an_index_on_the_quantized_backend(tmp_path: Path) -> None:
    colors = ["red", "green", "blue"]
    lines = [
        {"id": f"p{i}", "title": f"product {i} {colors[i % 3]} lamp", "attributes": {"color": colors[i % 3]}}
        for i in range(60)
    ]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    index = tmp_path / "idx"
    done = cli(index, "--encoder", "hashing", "--backend", "quantized", "add", str(catalog))
    assert done.returncode == 0, done.stderr
    found = cli(index, "search", "red lamp", "--mode", "dense", "-k", "5", "--where", "color=red", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 5 and all(int(h["id"][1:]) % 3 == 0 for h in hits)
    assert (index / "index" / "text" / "manifest.json").is_file()
    with Engine.open(index) as engine:
        assert engine.settings["backend"] == "quantized" and isinstance(engine.backend, QuantizedBackend)
        assert engine.backend.saved_seq == engine.last_seq()  # reopened from its checkpoint, no rebuild
        engine.add([Item.create("p60", title="product 60 red lamp", attributes={"color": "red"})])
        result = engine.search(Query(text="product 60 red lamp", k=3, mode="dense", filters={"color": "red"}))
        assert result.hits.ids.tolist()[0] == "p60"
    with Engine.open(index, encoder=HashingEncoder(), backend="quantized") as engine:  # the same setting: fine
        assert engine.backend.count("text") == 61
    with pytest.raises(ConfigError, match="created with backend 'quantized'"):
        Engine.open(index, backend="local")
    assert os.path.isdir(index / "index")


def test_rows_not_yet_checkpointed_spill_to_disk_past_the_limit(tmp_path: Path, layout: str) -> None:
    folder, data = tmp_path / "index", unit(1300, 9)
    b = backend(folder, layout=layout, spill_rows=500)
    for start in range(0, 1200, 100):
        put(b, data[start : start + 100], start)
    index = index_of(b)
    assert index.vectors.unsaved < 500 and index.vectors.parts == 2  # 2 x 500 rows written and mapped
    assert len(list((folder / "text").glob("part-*.npy"))) == 2 and not (folder / "state.json").exists()
    other = backend(
        folder, layout=layout, spill_rows=500
    )  # another process checkpoints meanwhile: its folder drops the spilled files
    put(other, data[1200:], 1200)
    other.checkpoint(1)
    assert b.checkpoint(2)  # written again from this process's mappings
    reopened = backend(folder, layout=layout, spill_rows=500)
    assert reopened.saved_seq == 2 and reopened.count("text") == 1200
    for i in (0, 700, 1199):
        rows, scores, _ = reopened.search(data[i : i + 1], 1)[0]
        assert rows.tolist() == [i] and np.isclose(scores[0], 1.0, atol=1e-6)


@pytest.mark.parametrize("coarse", ["flat", "hnsw"])
def test_the_ivf_layout_has_fewer_lists_while_small_and_all_of_them_once_trained(tmp_path: Path, coarse: str) -> None:
    """k-means wants ~39 vectors per list: a small index gets fewer lists, retrained as it doubles, until
    it was trained on train_size vectors; then nlist lists, and a reopen keeps them, nprobe and the coarse
    quantizer (the centroids compared one by one, or an HNSW graph over them)."""
    data, rows = unit(3500, 10), Rows()
    options = {"layout": "ivf", "nlist": 40, "nprobe": 4, "train_size": 2000, "exact_max": 0, "coarse": coarse}
    b = backend(tmp_path / "index", rows, **options)
    put(b, data[:100], rows=rows)
    index = b.indexes["text"]
    assert isinstance(index, QuantizedIVFIndex) and index.nlist == 100 // 39 and index.trained_on == 100
    for start in range(100, 3500, 100):
        put(b, data[start : start + 100], start, rows=rows)
        if start + 100 == 800:  # retrained at 200, 400 and 800 vectors
            assert index.nlist == 800 // 39 and index.trained_on == 800
    assert index.nlist == 40 and index.trained_on == 2000 and b.count("text") == 3500  # at 1,600 and 3,200
    assert index._graph.invlists.compute_ntotal() == 3500  # every vector in one list
    b.checkpoint(1)
    reopened = backend(tmp_path / "index", rows, **options)
    again = reopened.indexes["text"]
    assert isinstance(again, QuantizedIVFIndex) and again.nlist == 40 and again._graph.nprobe == 4
    quantizer = faiss.downcast_index(again._graph.quantizer)
    assert isinstance(quantizer, faiss.IndexFlatIP if coarse == "flat" else faiss.IndexHNSWFlat)
    assert reopened.saved_seq == 1  # read from the checkpoint, not rebuilt
    # a filter whose rows sit in lists the 4 nearest do not cover: the walk is widened or topped up
    expr = FilterExpr.parse({"rare": True})
    assert expr is not None
    allowed = rows.match_expr(expr)
    queries = unit(10, 11)
    for q, answer, truth in zip(
        queries, reopened.search(queries, 10, where=expr), exact(data, queries, 10, allowed), strict=True
    ):
        assert len(answer.rows) == 10 and set(answer.rows.tolist()) <= set(allowed.tolist())
        assert np.allclose(answer.scores, data[answer.rows] @ q, atol=1e-6)
        assert len(set(answer.rows.tolist()) & set(truth)) >= 8


@pytest.mark.parametrize("coarse", ["flat", "hnsw"])
def test_the_ivf_layout_without_kmeans_draws_its_centroids_from_the_sample(tmp_path: Path, coarse: str) -> None:
    """``kmeans_iters: 0``: the centroids are sample vectors (a seeded draw, 4 sample vectors per list while
    the sample is small), retrained as the index doubles as with k-means; the same filtered-search
    guarantees, and a reopen keeps the lists."""
    data, rows = unit(3500, 12), Rows()
    options = {"layout": "ivf", "nlist": 300, "nprobe": 30, "kmeans_iters": 0, "train_size": 2000, "exact_max": 0}
    b = backend(tmp_path / "index", rows, **options, coarse=coarse)
    put(b, data[:400], rows=rows)
    index = b.indexes["text"]
    assert isinstance(index, QuantizedIVFIndex) and index.nlist == 400 // 4 and index.trained_on == 400
    for start in range(400, 3500, 100):
        put(b, data[start : start + 100], start, rows=rows)
    assert index.nlist == 300 and index.trained_on == 2000 and index._graph.invlists.compute_ntotal() == 3500
    centroids = index._centroid_matrix()
    assert np.allclose((centroids @ data.T).max(axis=1), 1.0, atol=1e-5)  # each one a vector of the set
    b.checkpoint(1)
    reopened = backend(tmp_path / "index", rows, **options, coarse=coarse)
    again = reopened.indexes["text"]
    assert isinstance(again, QuantizedIVFIndex) and again.nlist == 300 and reopened.saved_seq == 1
    assert np.array_equal(again._centroid_matrix(), centroids)
    picked = np.array([0, 7, 401, 1999, 2000, 3499])
    for i, answer in zip(picked, reopened.search(data[picked], 10), strict=True):  # each finds itself first
        assert answer.rows[0] == i and np.allclose(answer.scores, data[answer.rows] @ data[i], atol=1e-6)
    queries = unit(10, 13)
    expr = FilterExpr.parse({"rare": True})
    assert expr is not None
    allowed = rows.match_expr(expr)
    for answer in reopened.search(queries, 10, where=expr):
        assert len(answer.rows) == 10 and set(answer.rows.tolist()) <= set(allowed.tolist())
    near = queries @ centroids.T  # the 30 nearest lists of each query, exactly
    lists = np.ascontiguousarray(np.argsort(-near, axis=1)[:, :30])
    walked_30 = again._graph.search_preassigned(queries, 200, lists, np.take_along_axis(near, lists, axis=1))[0]
    # nprobe = nlist, past the coarse graph's efSearch of 64: the walk reads every list, as the scan does
    again.tune(nprobe=300)
    walked, scanned = again._walk(queries, 200, None, 1.0)[0], again._scan(queries, 200, None)[0]
    assert np.allclose(walked, scanned, atol=1e-5)
    _, coded = HNSWIndex.search(again, queries, 200)  # the candidates a search rescores (200 <= nprobe)
    assert np.allclose(coded, scanned, atol=1e-5)
    again.tune(nprobe=30, coarse_ef=300)  # a walk over the centroids wider than nprobe: the 30 nearest lists
    assert again._coarse_ef == 300 and np.allclose(again._walk(queries, 200, None, 1.0)[0], walked_30, atol=1e-5)


def bottom_links(graph: Any) -> float:
    """Mean number of links per node in the graph's bottom layer (of its ``2 * M`` slots)."""
    hnsw = graph.hnsw
    neighbors = faiss.vector_to_array(hnsw.neighbors)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    links = neighbors[offsets[:-1, None] + np.arange(hnsw.nb_neighbors(0))]
    return float((links >= 0).sum(axis=1).mean())


def test_the_graph_fills_its_bottom_links_when_asked_and_after_a_reopen(tmp_path: Path) -> None:
    data = unit(3000, 5)
    mean_links = {}
    for fill in (True, False):
        folder = tmp_path / str(fill)
        b = backend(folder, **({"fill_links": True} if fill else {}))
        put(b, data[:2000])
        b.checkpoint(1)
        manifest = json.loads((folder / "text" / "manifest.json").read_text())
        assert manifest["options"]["fill_links"] is fill
        reopened = backend(folder, **({"fill_links": True} if fill else {}))
        graph = index_of(reopened)._graph
        assert graph.keep_max_size_level0 is fill  # not in FAISS's file: set again on the open
        put(reopened, data[2000:], 2000)  # later inserts fill their links too
        mean_links[fill] = bottom_links(graph)
    # the pruning heuristic alone keeps a fraction of the 32 slots; filled, the lists are (nearly) full
    assert mean_links[True] >= 30 and mean_links[True] > 1.5 * mean_links[False]
