"""``xmodal eval --mode all``: every mode per query kind with bootstrap intervals; the rrf and rsf anchors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine
from xmodal.cli import main
from xmodal.errors import ValidationError
from xmodal.eval.bootstrap import intervals, resample_counts
from xmodal.eval.compare import FUSED_MODES, parse_modes
from xmodal.eval.runner import EvalQuery, read_queries
from xmodal.ltr import anchors
from xmodal.records import Hits

FAST = ["--encoder", "hashing", "--index-kind", "exact"]
ITEMS = {
    "kettle": ("kettle", "a metal vessel for boiling water on a stove", "kitchen"),
    "teapot": ("teapot", "a pot with a spout in which tea is brewed and served", "kitchen"),
    "anvil": ("anvil", "an iron block on which metals are hammered and shaped", "workshop"),
    "hammer": ("hammer", "a hand tool with a heavy head for driving nails", "workshop"),
    "saw": ("saw", "a hand tool with a toothed blade for cutting wood", "workshop"),
    "ladle": ("ladle", "a long handled spoon for serving soup", "kitchen"),
    "whisk": ("whisk", "a utensil of wire loops for beating eggs or cream", "kitchen"),
    "chisel": ("chisel", "an edge tool with a flat steel blade for shaping wood or stone", "workshop"),
}
QUERIES = [
    {"kind": "name", "text": "kettle", "relevant": ["kettle"]},
    {"kind": "name", "text": "anvil", "relevant": ["anvil"]},
    {"kind": "name", "text": "whisk", "relevant": ["whisk"]},
    {"kind": "name", "text": "chisel", "relevant": ["chisel"]},
    {"kind": "descriptive", "text": "something to boil water in", "relevant": ["kettle"]},
    {"kind": "descriptive", "text": "tool for cutting timber", "relevant": ["saw", "chisel"]},
    {"kind": "descriptive", "text": "serving soup", "relevant": ["ladle"]},
]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A hand-made judged set (two kinds, one held out) indexed through the CLI: (index, queries file)."""
    folder = tmp_path_factory.mktemp("compare")
    catalog = folder / "catalog.jsonl"
    catalog.write_text(
        "".join(
            json.dumps({"id": i, "title": t, "text": x, "attributes": {"room": r}}) + "\n"
            for i, (t, x, r) in ITEMS.items()
        )
    )
    queries = folder / "queries.jsonl"
    queries.write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    kinds = {"name": {"split": "tuning"}, "descriptive": {"split": "held_out"}}
    (folder / "set.json").write_text(
        json.dumps({"name": "tools", "kind_order": ["name", "descriptive"], "kinds": kinds})
    )
    assert main(["--index", str(folder / "idx"), *FAST, "add", "-q", str(catalog)]) == 0
    return folder / "idx", queries


def _eval(capsys: pytest.CaptureFixture[str], index: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--index", str(index), "eval", *argv, "-q"])
    out, err = capsys.readouterr()
    return code, out, err


# -- bootstrap ----------------------------------------------------------------------------------------
def test_bootstrap_intervals_hold_the_mean_and_pair_the_systems() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200)
    b = np.clip(a + rng.normal(0.05, 0.02, 200), 0, 1)  # b beats a on almost every query
    counts = resample_counts(200, 500, seed=7, key="name")
    assert counts.shape == (500, 200) and np.all(counts.sum(axis=1) == 200)
    ia, ib, diff, same = intervals(np.stack([a, b, b - a, a - a]), counts)
    for interval, values in ((ia, a), (ib, b), (diff, b - a)):
        assert interval.low <= interval.mean <= interval.high and interval.mean == pytest.approx(values.mean())
    assert ia.high - ia.low > 0.05  # unpaired, the two intervals overlap...
    assert ia.high > ib.low
    assert diff.low > 0.04 and diff.high - diff.low < 0.02  # ...paired, the difference is clearly positive
    assert same.low == same.high == same.mean == 0.0
    assert np.array_equal(counts, resample_counts(200, 500, seed=7, key="name"))
    assert not np.array_equal(counts, resample_counts(200, 500, seed=7, key="other"))


# -- the anchors --------------------------------------------------------------------------------------
def test_rrf_and_rsf_on_a_hand_made_example() -> None:
    runs = {
        "dense": Hits.of(["a", "b", "c"], [0.9, 0.8, 0.1]),
        "lexical": Hits.of(["c", "a"], [10.0, 2.0]),
    }
    rrf = {h.id: h.score for h in anchors.fuse("rrf", runs)}
    assert rrf == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61})
    assert [h.id for h in anchors.fuse("rrf", runs)] == ["a", "c", "b"]  # 1/61 + 1/62 > 1/61 + 1/63
    # min-max per run: dense a=1, b=0.875, c=0; lexical c=1, a=0; then 0.75 dense + 0.25 lexical
    rsf = anchors.fuse("rsf", runs)
    assert [h.id for h in rsf] == ["a", "b", "c"]
    assert {h.id: h.score for h in rsf} == pytest.approx({"a": 0.75, "b": 0.75 * 0.875, "c": 0.25})
    assert rsf[0].sources == {"dense": (1, pytest.approx(0.9)), "lexical": (2, 2.0)}


def test_anchor_modes_fuse_the_engines_own_dense_and_lexical_runs(judged: tuple[Path, Path]) -> None:
    index, _ = judged
    with Engine.open(index) as engine:
        assert {"rrf", "rsf"} <= set(engine.modes())
        for text in ("hand tool for wood", "boiling water", "iron block"):
            dense = engine.search(text, mode="dense", k=100).hits
            lexical = engine.search(text, mode="lexical", k=100).hits
            for name in ("rrf", "rsf"):
                expected = anchors.fuse(name, {"dense": dense, "lexical": lexical})[:5]
                found = engine.search(text, mode=name, k=5, explain=True)
                assert found.hits.ids.tolist() == [h.id for h in expected], (name, text)
                assert found.hits.scores.tolist() == pytest.approx([h.score for h in expected], abs=1e-6)
                assert found.explain is not None and found.explain["fusion"]["window"] == anchors.WINDOW


# -- the comparison -----------------------------------------------------------------------------------
def test_eval_mode_all_reports_every_mode_per_kind(judged: tuple[Path, Path], capsys: Any) -> None:
    index, queries = judged
    code, out, err = _eval(capsys, index, str(queries), "--mode", "all", "--json", "--resamples", "200")
    assert code == 0, err
    report = json.loads(out)
    modes = report["modes"]
    assert {"dense", "lexical", "learned", "rrf", "rsf", "uniform"} <= set(modes)
    assert modes.index("lexical") < modes.index("rrf") < modes.index("learned")  # single strategies first
    assert set(report["single_strategies"]) == set(modes) - FUSED_MODES
    skipped = {entry["mode"]: entry["reason"] for entry in report["skipped_modes"]}
    assert set(skipped) == {"generative", "generative-rerank"} and "genret train" in skipped["generative"]
    assert [g["kind"] for g in report["kinds"]] == ["name", "descriptive", "(all kinds)"]
    assert [g["split"] for g in report["kinds"]] == ["tuning", "held_out", None]
    assert [g["queries"] for g in report["kinds"]] == [4, 3, 7]
    for group in report["kinds"]:
        best = group["best_single"]
        for metric in ("ndcg@10", "recall@10", "recall@1", "mrr"):
            assert best[metric] in report["single_strategies"]
            top = group["modes"][best[metric]][metric]["mean"]
            for mode, stats in group["modes"].items():
                cell, diff = stats[metric], stats["vs_best_single"][metric]
                assert cell["low"] <= cell["mean"] <= cell["high"], (mode, metric)
                assert diff["low"] <= diff["mean"] <= diff["high"]
                assert diff["mean"] == pytest.approx(cell["mean"] - top, abs=2e-4)
                assert mode not in report["single_strategies"] or cell["mean"] <= top
    names = report["kinds"][0]["modes"]
    assert names["lexical"]["recall@1"]["mean"] == 1.0  # a name query finds its item first by its title

    code, out, _ = _eval(capsys, index, str(queries), "--mode", "all", "--resamples", "200")
    assert code == 0 and "kind descriptive HELD OUT (evaluated only, never tuned on): 3 queries" in out
    assert "skipped mode generative:" in out and "ΔnDCG@10 vs best" in out


def test_eval_several_modes_and_kinds(judged: tuple[Path, Path], capsys: Any) -> None:
    index, queries = judged
    code, out, err = _eval(capsys, index, str(queries), "--mode", "dense,rrf", "--kind", "name", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["modes"] == ["dense", "rrf"] and report["single_strategies"] == ["dense"]
    assert [g["kind"] for g in report["kinds"]] == ["name"] and report["queries"] == 4
    code, out, _ = _eval(capsys, index, str(queries), "--mode", "dense,lexical,rrf", "--versus", "lexical", "--json")
    assert code == 0 and json.loads(out)["single_strategies"] == ["lexical"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "dense,telepathy"], "unknown search mode 'telepathy'"),
        (["--mode", "all,"], "unknown search mode 'all'"),
        (["--mode", "dense,generative"], "--mode 'generative' cannot run on this index: no generative model"),
        (["--mode", "all", "--kind", "slogan"], "--kind 'slogan': no query of that kind"),
        (["--mode", "dense,rrf", "--versus", "lexical"], "--versus must name modes that are compared"),
        (["--mode", "all", "--resamples", "0"], "--resamples must be from 1"),
    ],
)
def test_eval_bad_options_exit_2(judged: tuple[Path, Path], capsys: Any, argv: list[str], message: str) -> None:
    index, queries = judged
    code, out, err = _eval(capsys, index, str(queries), *argv)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_kind_the_set_does_not_declare_is_a_bad_line(judged: tuple[Path, Path], capsys: Any, tmp_path: Path) -> None:
    _, queries = judged
    folder = queries.parent
    extra = folder / "extra.jsonl"
    extra.write_text(
        json.dumps({"kind": "name", "text": "saw", "relevant": ["saw"]})
        + "\n"
        + json.dumps({"kind": "slogan", "text": "hammer time", "relevant": ["hammer"]})
        + "\n"
    )
    entries = list(read_queries(extra, ["name", "descriptive"]))
    assert isinstance(entries[0], EvalQuery) and entries[0].kind == "name"
    assert not isinstance(entries[1], EvalQuery)
    assert "'slogan' is not a kind of this judged set (its set.json declares descriptive, name)" in entries[1].reason
    index = folder / "idx"
    code, out, err = _eval(capsys, index, str(extra), "--mode", "dense,lexical", "--json")
    report = json.loads(out)
    assert code == 0 and report["queries"] == 1 and "'slogan' is not a kind" in report["skipped"][0]["reason"]
    # without a set.json beside it, any kind goes
    alone = tmp_path / "alone.jsonl"
    alone.write_text(extra.read_text())
    assert all(isinstance(e, EvalQuery) for e in read_queries(alone))


def test_parse_modes() -> None:
    available = ["dense", "learned", "lexical", "rrf", "rsf", "uniform"]
    assert parse_modes("all", available) == (["dense", "lexical", "uniform", "rrf", "rsf", "learned"], True)
    assert parse_modes(" lexical , dense,lexical", available) == (["lexical", "dense"], False)
    with pytest.raises(ValidationError, match="names no mode"):
        parse_modes(",", available)


@pytest.mark.parametrize("modes", [[], ["--mode", "all"]])
def test_a_file_with_no_query_to_evaluate_is_an_error(
    judged: tuple[Path, Path], capsys: Any, tmp_path: Path, modes: list[str]
) -> None:
    """Not a table of zeros: the file names the first bad line, and a query under another common name is named."""
    index, _ = judged
    trec = tmp_path / "trec.jsonl"
    trec.write_text(json.dumps({"query": "saw", "relevant": ["saw"]}) + "\n")
    code, out, err = _eval(capsys, index, str(trec), *modes)
    assert code == 2 and "no query to evaluate (1 line skipped; " in err, err
    assert 'the query text goes in "text": rename "query"' in err and "nDCG" not in out
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    code, _, err = _eval(capsys, index, str(empty), *modes)
    assert code == 2 and "no query to evaluate (0 lines skipped)" in err
