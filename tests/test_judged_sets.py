"""The judged sets (xmodal.eval.judged) built small from the real Debian data, and what they promise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from xmodal.errors import ValidationError
from xmodal.eval.judged import build_set, debian, wordnet
from xmodal.eval.judged.base import Candidate, Kind, assemble, misspell
from xmodal.eval.judged.dictd import DICTD_ROOT
from xmodal.eval.sets import HELD_OUT, TUNING, read_set_info
from xmodal.samples import WORDNET_ROOT
from xmodal.store.analysis import stem_word, tokens

ITEMS, PER_KIND = 300, 15
needs_wordnet = pytest.mark.skipif(
    not (WORDNET_ROOT / "data.noun").is_file() or not (DICTD_ROOT / "gcide.index").is_file(),
    reason="WordNet or GCIDE missing: apt-get install wordnet-base dict-gcide",
)
needs_apt = pytest.mark.skipif(shutil.which("apt-cache") is None, reason="the Debian set needs apt-cache")


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    meta = json.loads((folder / "set.json").read_text())
    items = {r["id"]: r for r in map(json.loads, (folder / "catalog.jsonl").read_text().splitlines())}
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    return meta, items, queries


@pytest.fixture(scope="module")
def wordnet_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (WORDNET_ROOT / "data.noun").is_file() or not (DICTD_ROOT / "gcide.index").is_file():
        pytest.skip("WordNet or GCIDE missing: apt-get install wordnet-base dict-gcide")
    folder = tmp_path_factory.mktemp("judged") / "wordnet"
    build_set("wordnet", folder, items=ITEMS, per_kind=PER_KIND, seed=3)
    return folder


@pytest.fixture(scope="module")
def listing() -> str:
    if shutil.which("apt-cache") is None:
        pytest.skip("the Debian set needs apt-cache")
    text = debian.dumpavail()
    if "Package:" not in text:
        pytest.skip("apt knows no package: run apt-get update")
    return text


@pytest.fixture(scope="module")
def debian_set(tmp_path_factory: pytest.TempPathFactory, listing: str) -> Path:
    folder = tmp_path_factory.mktemp("judged") / "debian"
    source = debian.build(ITEMS, 3, listing=listing)
    from xmodal.eval.judged.base import write_set

    write_set(source, folder, per_kind=PER_KIND, seed=3)
    return folder


@pytest.fixture(params=["wordnet", "debian"])
def built(request: pytest.FixtureRequest) -> Path:
    folder: Path = request.getfixturevalue(f"{request.param}_set")
    return folder


def test_every_kind_is_present_and_marked(built: Path) -> None:
    meta, items, queries = _read(built)
    module = wordnet if meta["name"] == "wordnet" else debian
    assert meta["kind_order"] == [k.name for k in module.KINDS] and len(meta["kind_order"]) >= 5
    assert {k: v["split"] for k, v in meta["kinds"].items()} == {k.name: k.split for k in module.KINDS}
    assert {TUNING, HELD_OUT} == {v["split"] for v in meta["kinds"].values()}
    assert len(items) == meta["items"] == ITEMS
    for kind, entry in meta["kinds"].items():
        count = sum(1 for q in queries if q["kind"] == kind)
        assert count == entry["queries"] and 1 <= count <= PER_KIND, kind
    info = read_set_info(built / "set.json")
    assert list(info.kinds) == meta["kind_order"] and info.held_out() == meta["splits"][HELD_OUT]["kinds"]


def test_judged_ids_exist_and_split_is_disjoint_by_item(built: Path) -> None:
    meta, items, queries = _read(built)
    judged: dict[str, set[str]] = {TUNING: set(), HELD_OUT: set()}
    for q in queries:
        assert q["text"].strip() and q["relevant"] == sorted(set(q["relevant"]))
        assert set(q["relevant"]) <= set(items), q
        judged[meta["kinds"][q["kind"]]["split"]].update(q["relevant"])
    assert judged[TUNING] and judged[HELD_OUT]
    assert not judged[TUNING] & judged[HELD_OUT]
    assert {s: len(judged[s]) for s in judged} == {s: v["judged_items"] for s, v in meta["splits"].items()}


def test_each_kind_is_judged_from_the_data(built: Path) -> None:
    meta, items, queries = _read(built)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for q in queries:
        by_kind.setdefault(q["kind"], []).append(q)
    titles = {r["title"].lower() for r in items.values()}
    for q in by_kind["name"]:
        assert len(q["relevant"]) == 1 and items[q["relevant"][0]]["title"] == q["text"]
    for q in by_kind["misspelled"]:
        (item,) = q["relevant"]
        assert q["text"].lower() not in titles and _one_typo(q["text"], items[item]["title"]), q
    for q in by_kind["fragment"]:  # every item holding the words, in order, is judged relevant
        holders = {i for i, r in items.items() if f" {q['text']} " in " " + " ".join(tokens(r["text"])) + " "}
        assert holders == set(q["relevant"]), q
    for q in by_kind["attribute"]:
        category, word = q["text"].split(" ")
        field = "lexname" if meta["name"] == "wordnet" else "section"
        expected = {
            i for i, r in items.items() if str(r["attributes"][field]).endswith(category) and word in tokens(r["text"])
        }
        assert expected == set(q["relevant"]) and 2 <= len(expected), q
    if meta["name"] == "wordnet":
        for q in by_kind["definition"]:
            (item,) = q["relevant"]
            named = {stem_word(w) for w in tokens(items[item]["title"])}
            assert not named & {stem_word(w) for w in tokens(q["text"])}, q
            assert len(q["text"].split()) >= 5
        for q in by_kind["synonym"]:
            assert all(
                q["text"].lower() not in f"{items[i]['title']} {items[i]['text']}".lower() for i in q["relevant"]
            )
    else:
        for q in by_kind["provides"]:
            assert 2 <= len(q["relevant"]) <= 30 and q["text"] == q["text"].lower()


def _one_typo(typo: str, word: str) -> bool:
    from xmodal.ltr.text import within_one_edit

    return typo != word and within_one_edit(typo.lower(), word.lower())


def test_the_same_seed_builds_the_same_files(listing: str, debian_set: Path, tmp_path: Path) -> None:
    from xmodal.eval.judged.base import write_set

    write_set(debian.build(ITEMS, 3, listing=listing), tmp_path / "again", per_kind=PER_KIND, seed=3)
    for name in ("catalog.jsonl", "queries.jsonl", "set.json"):
        assert (tmp_path / "again" / name).read_bytes() == (debian_set / name).read_bytes(), name
    write_set(debian.build(ITEMS, 4, listing=listing), tmp_path / "other", per_kind=PER_KIND, seed=4)
    assert (tmp_path / "other" / "queries.jsonl").read_bytes() != (debian_set / "queries.jsonl").read_bytes()


def test_assemble_keeps_the_splits_apart_and_takes_turns() -> None:
    kinds = [Kind("a", TUNING, ""), Kind("b", HELD_OUT, "")]
    candidates = {
        "a": [Candidate(f"a{i}", (f"x{i}", f"x{i + 1}")) for i in range(10)],
        "b": [Candidate(f"b{i}", (f"x{i}",)) for i in range(10)] + [Candidate("B0", ("x0",))],  # B0 repeats b0
    }
    queries, side = assemble(kinds, candidates, per_kind=4, seed=0)
    for q in queries:
        assert all(side[item] == ("tuning" if q["kind"] == "a" else "held_out") for item in q["relevant"])
    assert 1 <= sum(q["kind"] == "a" for q in queries) <= 4 and sum(q["kind"] == "b" for q in queries) == 4
    assert len({q["text"].lower() for q in queries}) == len(queries)


def test_misspell_never_makes_a_word() -> None:
    vocabulary = {"kettle", "kettles"}
    for seed in range(20):
        typo = misspell("kettle", "k", seed, vocabulary)
        assert typo is not None and typo not in vocabulary and typo[0] == "k" and _one_typo(typo, "kettle")
    assert misspell("cat", "k", 0, set()) is None  # too short to misspell


def test_bad_names_and_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown judged set 'imdb'"):
        build_set("imdb", tmp_path)
    with pytest.raises(ValidationError, match="at least 10 items"):
        build_set("wordnet", tmp_path, items=3)


@needs_wordnet
def test_webster_definitions_are_cleaned() -> None:
    entry = (
        'Anvil \\An"vil\\, n. [OE. anvelt, anfelt, AS.\n   onfilt; cf. OHG. anafalz.]\n'
        "   1. An iron block, usually with a steel face, upon which\n      metals are hammered and shaped.\n"
        "      [1913 Webster]\n\n   2. Anything resembling an anvil.\n      [1913 Webster]\n"
    )
    assert wordnet.webster_definition(entry, "anvil") == (
        "An iron block, usually with a steel face, upon which metals are hammered and shaped."
    )
    assert wordnet.webster_definition(entry, "forge") is None  # another headword
    verb = 'Anvil \\An"vil\\, v. t.\n   To form or shape on an anvil.\n   [1913 Webster]\n'
    assert wordnet.webster_definition(verb, "anvil") is None
    borrowed = (
        'bluejacket \\blue"jack*et\\ n.\n   a serviceman in the navy.\n\n   Syn: sailor.\n        [WordNet 1.5]\n'
    )
    assert wordnet.webster_definition(borrowed, "bluejacket") is None  # GCIDE's copy of WordNet's own gloss


def test_a_built_set_evaluates_per_kind_end_to_end(
    wordnet_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xmodal.cli import main

    index = str(tmp_path / "idx")
    assert (
        main(
            [
                "--index",
                index,
                "--encoder",
                "hashing",
                "--index-kind",
                "exact",
                "add",
                "-q",
                str(wordnet_set / "catalog.jsonl"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    query_file = str(wordnet_set / "queries.jsonl")
    assert main(["--index", index, "eval", query_file, "--mode", "dense,lexical,rrf,learned", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    meta = json.loads((wordnet_set / "set.json").read_text())
    assert [g["kind"] for g in report["kinds"]] == [*meta["kind_order"], "(all kinds)"]
    assert report["set"]["kinds"] == {k: v["split"] for k, v in meta["kinds"].items()}
    assert report["unknown_relevant"] == 0 and not report["skipped"]
    name = next(g for g in report["kinds"] if g["kind"] == "name")
    assert name["modes"]["lexical"]["recall@10"]["mean"] >= 0.9  # the title is in the item: BM25 finds it
