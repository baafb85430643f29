"""The manual pages judged set (xmodal.eval.judged.manpages) and its roff reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from xmodal.errors import ConfigError
from xmodal.eval.judged import manpages
from xmodal.eval.judged.base import write_set
from xmodal.eval.judged.roff import inline, name_line, sections
from xmodal.eval.sets import HELD_OUT, TUNING
from xmodal.ltr.text import within_one_edit
from xmodal.store.analysis import stem_word, tokens

PAGE = r""".\" Copyright (c) 1992 Drew Eckhardt
.TH open 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
open, openat, creat \- open and possibly create a file
.SH LIBRARY
Standard C library
.RI ( libc ", " \-lc )
.SH SYNOPSIS
.nf
.B #include <fcntl.h>
.BI "int open(const char *" pathname ", int " flags );
.fi
.SH DESCRIPTION
The
.BR open ()
system call opens the file specified by
.IR pathname .
It is \fBnot\fP an \(lqalias\(rq\ for \%creat\-like calls.
.TS
tab(:);
l l.
ignored:table
.TE
.PP
.SS Flags
A second\c
paragraph.
.IP \(bu 2
a bullet
.SH SEE ALSO
.BR close (2)
"""


def test_roff_sections_keep_running_text_only() -> None:
    parts = sections(PAGE)
    assert list(parts) == ["NAME", "LIBRARY", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"]
    assert parts["DESCRIPTION"].split("\n\n") == [
        'The open() system call opens the file specified by pathname. It is not an "alias" for creat-like calls.',
        "Flags",
        "A secondparagraph.",
        "a bullet",
    ]
    assert parts["LIBRARY"] == "Standard C library (libc, -lc)"
    assert parts["SEE ALSO"] == "close(2)"
    assert name_line(parts["NAME"]) == (["open", "openat", "creat"], "open and possibly create a file")
    assert name_line("no dash here") is None
    assert inline(r"\fI\-x\fP \[em] \(aq\*(lq\s-1SMALL\s0") == "-x — '\"SMALL"


@pytest.fixture(scope="module")
def pages() -> list[Path]:
    try:
        files = manpages.page_files()
    except ConfigError as exc:  # not installed, or no dpkg
        pytest.skip(f"the manual pages are missing ({exc}): apt-get install manpages manpages-dev")
    if len(files) < 300:
        pytest.skip("the manual pages are missing: apt-get install manpages manpages-dev")
    return files


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    meta = json.loads((folder / "set.json").read_text())
    items = {r["id"]: r for r in map(json.loads, (folder / "catalog.jsonl").read_text().splitlines())}
    return meta, items, [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]


def _build(files: list[Path], folder: Path) -> Path:
    return write_set(manpages.build(400, 3, files=files), folder, per_kind=20, seed=3).folder


def test_manual_pages_set_is_judged_from_the_pages(pages: list[Path], tmp_path: Path) -> None:
    folder = _build(pages[:600], tmp_path / "man")  # a part of the manual: each build reads every page it is given
    meta, items, queries = _read(folder)
    assert len(items) == meta["items"] == 400 and meta["source"]["packages"].keys() == {"manpages", "manpages-dev"}
    assert {k: v["split"] for k, v in meta["kinds"].items()} == {k.name: k.split for k in manpages.KINDS}
    assert all(meta["kinds"][k.name]["queries"] == 20 for k in manpages.KINDS)
    judged: dict[str, set[str]] = {TUNING: set(), HELD_OUT: set()}
    for q in queries:
        assert set(q["relevant"]) <= set(items) and q["relevant"] == sorted(set(q["relevant"]))
        judged[meta["kinds"][q["kind"]]["split"]].update(q["relevant"])
    assert judged[TUNING] and judged[HELD_OUT] and not judged[TUNING] & judged[HELD_OUT]
    names = {i: {n.lower() for n in r["title"].split(", ")} for i, r in items.items()}
    for q in queries:
        if q["kind"] == "name":  # every page documenting the name, and only those
            assert {i for i, n in names.items() if q["text"].lower() in n} == set(q["relevant"]), q
        elif q["kind"] == "misspelled":
            assert not any(q["text"].lower() in n for n in names.values())
            assert any(within_one_edit(q["text"].lower(), n) for n in names[q["relevant"][0]]), q
        elif q["kind"] == "fragment":
            holders = {i for i, r in items.items() if f" {q['text']} " in " " + " ".join(tokens(r["text"])) + " "}
            assert holders == set(q["relevant"]), q
        else:  # whatis: never in the item, names none of the page's names
            for i in q["relevant"]:
                assert q["text"].lower() not in f"{items[i]['title']} {items[i]['text']}".lower()
                named = {stem_word(t) for n in names[i] for t in tokens(n)}
                assert not named & {stem_word(t) for t in tokens(q["text"])}, q
    again = _build(pages[:600], tmp_path / "again")
    for name in ("catalog.jsonl", "queries.jsonl", "set.json"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_aliases_and_pages_without_description_are_left_out(tmp_path: Path) -> None:
    alias, bare, good = tmp_path / "creat.2.gz", tmp_path / "bare.2.gz", tmp_path / "man2" / "open.2.gz"
    good.parent.mkdir()
    alias.write_bytes(gzip.compress(b".so man2/open.2\n"))
    bare.write_bytes(gzip.compress(b".TH bare 2\n.SH NAME\nbare \\- nothing else\n"))
    good.write_bytes(gzip.compress(PAGE.encode()))
    assert manpages.read_page(alias) is None and manpages.read_page(bare) is None
    page = manpages.read_page(good)
    assert page is not None and (page.item_id, page.section, page.library) == ("man/open.2", "2", "Standard C library")
    assert manpages.record(page)["title"] == "open, openat, creat"
    source = manpages.build(10, 0, files=[alias, bare, good])
    assert [r["id"] for r in source.items] == ["man/open.2"]
    assert not source.candidates["whatis"]  # "open and possibly create a file" names "open"


def test_missing_pages_say_what_to_install() -> None:
    with pytest.raises(ConfigError, match="apt-get install no-such-package"):
        manpages.page_files(("no-such-package",))
    with pytest.raises(ConfigError, match="apt-get install manpages manpages-dev"):
        manpages.build(10, 0, files=[])
