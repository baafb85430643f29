"""The ``xmodal`` command-line contract: commands, JSON shapes, reports and exit statuses.

Most runs call :func:`xmodal.cli.main` in-process; a few run the real ``python -m xmodal.cli`` and
``xmodal`` script. All use the hashing encoder and the exact index for speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from xmodal import cli
from xmodal.cli import build_parser, main

FAST = ["--encoder", "hashing", "--index-kind", "exact"]
COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 230, 20)}
TITLES = {
    "mug": "a ceramic coffee mug",
    "tea": "green tea leaves in a tin",
    "bike": "a red racing bicycle",
    "lamp": "a brass desk lamp",
    "book": "a paperback novel about whales",
}


def make_catalog(folder: Path) -> Path:
    """Five text items and four image+text squares, with color and price attributes."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for n, (item_id, title) in enumerate(TITLES.items()):
        lines.append({"id": item_id, "title": title, "attributes": {"color": list(COLORS)[n % 4], "price": n * 10}})
    for n, (name, rgb) in enumerate(COLORS.items()):
        Image.new("RGB", (24, 24), rgb).save(folder / "img" / f"{name}.png")
        lines.append(
            {
                "id": f"sq-{name}",
                "title": f"{name} square",
                "image": f"img/{name}.png",
                "attributes": {"color": name, "price": 5 + n},
            }
        )
    path = folder / "catalog.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A read-only index built once through the CLI: (index folder, catalog file)."""
    folder = tmp_path_factory.mktemp("cli")
    path = make_catalog(folder)
    assert main(["--index", str(folder / "idx"), *FAST, "add", "-q", str(path)]) == 0
    return folder / "idx", path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def search_json(capsys: pytest.CaptureFixture[str], index: Path, *argv: str) -> dict[str, object]:
    code, out, err = run(capsys, "--index", str(index), "search", *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


# -- add ---------------------------------------------------------------------------------------


def test_add_reports_rejections_with_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = tmp_path / "c.jsonl"
    cat.write_text(
        '{"id": "a", "title": "alpha"}\n{"id": "b", "titel": "typo"}\n'
        '{"id": "c", "image": "gone.png"}\n{"id": "d", "title": "delta"}\n'
    )
    code, out, _ = run(capsys, "--index", str(tmp_path / "idx"), *FAST, "add", str(cat))
    assert code == 1  # something was rejected
    assert out.startswith("added 2 items; rejected 2:")
    assert f"{cat}:2: item 'b': titel: unknown field" in out and f"{cat}:3: item 'c': image: file not found" in out

    code, out, _ = run(capsys, "--index", str(tmp_path / "idx"), "add", "--json", str(cat))
    report = json.loads(out)
    assert code == 1 and report["added"] == 2
    assert [r["where"] for r in report["rejected"]] == [f"{cat}:2", f"{cat}:3"]
    assert all(r["reason"] for r in report["rejected"])


def test_add_folder_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pics" / "fruit").mkdir(parents=True)
    Image.new("RGB", (16, 16), (250, 0, 0)).save(tmp_path / "pics" / "fruit" / "red_apple.png")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("id,title,attributes.price\npen,blue pen,3\n")
    index = tmp_path / "idx"
    code, out, err = run(capsys, "--index", str(index), *FAST, "add", "--json", str(tmp_path / "pics"), str(csv_path))
    assert code == 0, err
    assert json.loads(out) == {"added": 2, "rejected": []}
    code, out, _ = run(capsys, "--index", str(index), "get", "fruit/red_apple", "--json")
    item = json.loads(out)
    assert code == 0 and item["title"] == "red apple" and item["attributes"] == {"folder": "fruit"}
    assert item["modality"] == "image"


# -- search --------------------------------------------------------------------------------------


def test_search_json_shape(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    data = search_json(capsys, index, "ceramic coffee mug", "-k", "3")
    hits = data["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    assert {"id", "score", "modality", "title"} <= set(hits[0])
    assert hits[0]["id"] == "mug" and hits[0]["modality"] == "text" and hits[0]["title"] == TITLES["mug"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert isinstance(data["took_ms"], float) and data["took_ms"] >= 0


def test_search_filters(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    hits = search_json(capsys, index, "square", "-k", "9", "--where", "color=red|blue")["hits"]
    assert isinstance(hits, list) and hits and {h["attributes"]["color"] for h in hits} <= {"red", "blue"}
    assert sorted(h["id"] for h in hits) == ["bike", "book", "mug", "sq-blue", "sq-red"]
    hits = search_json(capsys, index, "a", "-k", "9", "--where", "price>=10", "--where", "price<30")["hits"]
    assert isinstance(hits, list) and sorted(h["id"] for h in hits) == ["bike", "tea"]


def test_search_by_image_and_target(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, catalog = built
    image = str(catalog.parent / "img" / "green.png")
    hits = search_json(capsys, index, "--image", image, "--target", "image", "-k", "2")["hits"]
    assert isinstance(hits, list) and hits[0]["id"] == "sq-green" and hits[0]["provenance"] == "dense:image"
    hits = search_json(capsys, index, "desk lamp", "--target", "text", "-k", "9", "--mode", "dense")["hits"]
    assert isinstance(hits, list) and all(h["provenance"] == "dense:text" for h in hits)
    hits = search_json(capsys, index, "desk lamp", "--target", "text", "-k", "9", "--mode", "learned")["hits"]
    assert isinstance(hits, list) and hits[0]["id"] == "lamp"
    assert not any("dense:image" in h["provenance"] or "dense:combined" in h["provenance"] for h in hits)


def test_global_options_after_the_command(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, out, err = run(
        capsys, "--index", "elsewhere", "search", "brass desk lamp", "-k", "1", "--index", str(index), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["hits"][0]["id"] == "lamp"


def test_search_table(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, out, err = run(capsys, "--index", str(index), "search", "brass desk lamp", "-k", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["#", "score", "id", "modality", "title"]
    assert lines[1].split()[:4] == ["1", lines[1].split()[1], "lamp", "text"] and "brass desk lamp" in lines[1]
    assert "took" in err


def test_search_without_a_mode_uses_the_index_default(
    built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:

    index, _ = built
    assert build_parser().parse_args(["search", "x"]).mode is None
    explained = search_json(capsys, index, "coffee mug", "--explain")
    assert explained["hits"] and explained["explain"]["mode"] == "learned"  # a new index's default mode setting
    assert search_json(capsys, index, "coffee mug", "--explain", "--mode", "dense")["explain"]["mode"] == "dense"


# -- similar --------------------------------------------------------------------------------------


def test_similar_is_the_engines(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from xmodal import Engine

    index, _ = built
    code, out, err = run(capsys, "--index", str(index), "similar", "sq-red", "-k", "3", "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    with Engine.open(index) as engine:
        assert hits == engine.similar("sq-red", k=3).to_dict()["hits"]
    assert len(hits) == 3 and "sq-red" not in [h["id"] for h in hits]
    assert all(h["provenance"].startswith("similar:dense:") for h in hits)
    code, out, err = run(capsys, "--index", str(index), "similar", "sq-red", "--target", "image", "-k", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["#", "score", "id"] and len(lines) == 3 and "sq-red" not in out
    assert "took" in err
    code, _, err = run(capsys, "--index", str(index), "similar", "nope")
    assert code == 1 and "nope" in err and "Traceback" not in err


# -- modes ----------------------------------------------------------------------------------------


def test_modes_lists_every_mode_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    from xmodal.modes import describe_modes

    modes = describe_modes()
    code, out, _ = run(capsys, "modes")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(modes) and "dense" in modes
    for line, (name, description) in zip(lines, modes.items(), strict=True):
        assert line.split()[0] == name and line.endswith(description)
    code, out, _ = run(capsys, "modes", "--json")
    assert code == 0 and json.loads(out) == [{"name": n, "description": d} for n, d in modes.items()]


@pytest.mark.parametrize("command", ["search", "eval"])
def test_help_lists_the_modes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from xmodal.modes import describe_modes

    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "search modes" in out
    lines = out.splitlines()
    for name, description in describe_modes().items():
        assert any(line.split()[:1] == [name] and line.endswith(description) for line in lines), name


# -- get / delete / info ---------------------------------------------------------------------------


def test_get_and_info(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, out, _ = run(capsys, "--index", str(index), "get", "sq-red", "--json")
    item = json.loads(out)
    assert code == 0 and item["id"] == "sq-red" and item["modality"] == "image+text"
    assert item["attributes"] == {"color": "red", "price": 5} and item["image"].startswith("media/")
    assert item["media_url"] == "/items/sq-red/media" and item["thumbnail_url"] == "/items/sq-red/thumbnail"
    code, out, _ = run(capsys, "--index", str(index), "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["items"] == 9
    assert info["modalities"] == {"text": 5, "image+text": 4}
    assert info["encoder"]["name"] == "hashing" and info["dim"] == 384 and info["index"] == "exact"
    code, out, _ = run(capsys, "--index", str(index), "info")
    assert code == 0 and "hashing" in out and "9 (" in out


def test_get_missing_is_error_1_without_traceback(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, out, err = run(capsys, "--index", str(index), "get", "nope", "--json")
    assert code == 1 and out == "" and "no item with id 'nope'" in err and "Traceback" not in err


def test_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_catalog(tmp_path)
    index = str(tmp_path / "idx")
    assert run(capsys, "--index", index, *FAST, "add", str(path))[0] == 0
    code, out, err = run(capsys, "--index", index, "delete", "mug", "tea", "ghost", "--json")
    assert code == 0 and json.loads(out) == {"deleted": 2, "not_found": ["ghost"]}
    assert run(capsys, "--index", index, "get", "mug")[0] == 1
    hits = search_json(capsys, Path(index), "ceramic coffee mug", "-k", "9")["hits"]
    assert isinstance(hits, list) and "mug" not in [h["id"] for h in hits] and len(hits) == 7


# -- eval ----------------------------------------------------------------------------------------


def test_eval(built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index, catalog = built
    (tmp_path / "q").mkdir()
    Image.new("RGB", (24, 24), COLORS["blue"]).save(tmp_path / "q" / "blue.png")
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"text": TITLES["bike"], "relevant": ["bike"], "note": "ignored"})
        + "\n"
        + json.dumps({"image": "q/blue.png", "relevant": ["sq-blue"]})
        + "\n"
        + "not json\n"
        + json.dumps({"text": "x"})
        + "\n"
        + json.dumps({"image": "q/missing.png", "relevant": ["mug"]})
        + "\n"
    )
    code, out, err = run(capsys, "--index", str(index), "eval", str(queries), "--json", "-q")
    assert code == 0, err
    report = json.loads(out)
    assert report["queries"] == 2 and report["k"] == 10
    for name in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"):
        assert report[name] == 1.0, name
    assert [s["where"] for s in report["skipped"]] == [f"{queries}:3", f"{queries}:4", f"{queries}:5"]
    assert "relevant" in report["skipped"][1]["reason"] and "file not found" in report["skipped"][2]["reason"]

    code, out, _ = run(capsys, "--index", str(index), "eval", str(queries), "--where", "color=blue", "-q")
    assert code == 0 and "queries     2" in out and "skipped" in out and "recall@1    1.0000" in out
    code, out, _ = run(capsys, "--index", str(index), "eval", str(queries), "--where", "color=red", "-q")
    assert code == 0 and "recall@10   0.0000" in out  # the bike and the blue square are not red


# -- exit statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "info"],
        ["search"],  # empty query
        ["search", "   "],
        ["search", "x", "-k", "0"],
        ["search", "x", "-k", "-3"],
        ["search", "x", "-k", "1000000"],
        ["search", "x", "-k", "ten"],
        ["search", "x", "--where", "novalue"],
        ["search", "x", "--where", "=3"],
        ["search", "x", "--where", "price<cheap"],
        ["search", "x", "--target", "sideways"],
        ["search", "x", "--mode", "telepathy"],
        ["eval", "does-not-exist.jsonl"],
        ["eval", "q.jsonl", "-k", "0"],
        ["get"],
        ["similar"],
        ["similar", "mug", "-k", "0"],
        ["similar", "mug", "--target", "sideways"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, out, err = run(capsys, "--index", str(index), *argv)
    assert code == 2, (argv, out, err)
    assert err.strip() and "Traceback" not in err


def test_tuning_a_catalog_too_small_is_a_usage_error_that_searches_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = str(tmp_path / "idx")
    assert main(["--index", index, *FAST, "add", "-q", str(make_catalog(tmp_path))]) == 0
    code, _, err = run(capsys, "--index", index, "ltr", "tune")
    assert code == 2 and "too small or has too little text to tune on" in err and "Traceback" not in err
    tuning = search_json(capsys, Path(index), "coffee mug", "--explain")["explain"]
    assert isinstance(tuning, dict) and tuning["tuning"]["status"].startswith(
        "not self-tuned: the catalog is too small"
    )


def test_no_command_or_no_index_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XMODAL_INDEX", raising=False)
    assert run(capsys, "--index", "somewhere")[0] == 2
    code, _, err = run(capsys, "search", "x")
    assert code == 2 and "--index" in err


def test_unknown_attribute_is_error_1_when_strict(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built
    code, _, err = run(capsys, "--index", str(index), "search", "x", "--where", "colour=red", "--strict")
    assert code == 1 and "filters.colour" in err and "color" in err and "Traceback" not in err
    assert search_json(capsys, index, "x", "--where", "colour=red")["hits"] == []  # not strict: matches nothing


def test_bad_query_image_is_error_1(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index, _ = built
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    code, _, err = run(capsys, "--index", str(index), "search", "--image", str(tmp_path / "nope.png"))
    assert code == 1 and "file not found" in err and "Traceback" not in err
    code, _, err = run(capsys, "--index", str(index), "search", "red", "--image", str(tmp_path / "broken.png"))
    assert code == 1 and "image" in err and "Traceback" not in err


def test_missing_index_and_dimension_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--index", str(tmp_path / "none"), "info")
    assert code == 2 and "not an xmodal index" in err and not (tmp_path / "none").exists()
    cat = tmp_path / "c.jsonl"
    cat.write_text('{"id": "a", "title": "alpha"}\n')
    assert run(capsys, "--index", str(tmp_path / "idx"), *FAST, "--dim", "64", "add", str(cat))[0] == 0
    code, _, err = run(capsys, "--index", str(tmp_path / "idx"), "--dim", "128", "info")
    assert code == 1 and "dim" in err and "64" in err
    code, out, _ = run(capsys, "--index", str(tmp_path / "idx"), "info", "--json")
    assert code == 0 and json.loads(out)["dim"] == 64


def test_command_modules_that_do_not_exist_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["core", "not_built_yet", "evaluate"])
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None and {"add", "search", "get", "delete", "info", "eval"} <= set(commands)


def test_the_command_table_names_what_each_module_registers() -> None:
    """:data:`xmodal.cli.COMMANDS` (a command line naming one imports only its module) matches the modules."""

    def commands(parser: argparse.ArgumentParser) -> set[str]:
        choices = next(a for a in parser._actions if a.dest == "command").choices
        assert choices is not None
        return set(choices)

    assert commands(build_parser()) == set(cli.COMMANDS)
    for command, module in cli.COMMANDS.items():
        assert commands(build_parser(command)) == {c for c, m in cli.COMMANDS.items() if m == module}


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["search", "x"], "search"),
        (["--index", "idx", "--option", "a=1", "search", "x", "--mode", "dense"], "search"),
        (["--index=idx", "train-ranker"], "train-ranker"),
        (["--index", "search", "info"], "info"),  # "search" is the folder
        (["--help"], None),
        ([], None),
        (["--index", "idx"], None),
        (["nosuch"], None),
        (["--nosuch", "search", "x"], None),
        (["--dim", "x", "info"], None),
    ],
)
def test_command_of(argv: list[str], command: str | None) -> None:
    assert cli.command_of(argv) == command


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(command in out for command in cli.COMMANDS)
    code, _, err = run(capsys, "nosuch")
    assert code == 2 and "invalid choice" in err and "search" in err


# -- real processes ------------------------------------------------------------------------------


def test_a_search_command_line_imports_neither_other_commands_nor_extensions() -> None:
    """``xmodal search`` builds the parser of its own module only, and building it imports no extension (the
    modes of ``--help`` are listed when the help is shown): the index opens what it needs."""
    code = (
        "import sys; from xmodal.cli import build_parser, command_of; argv = ['search', 'x', '--mode', 'dense'];"
        " build_parser(command_of(argv)).parse_args(argv);"
        " print(sorted(m for m in sys.modules if m.startswith(('xmodal.cli.serve', 'xmodal.cli.evaluate',"
        " 'xmodal.cli.redteam', 'xmodal.eval', 'xmodal.redteam', 'xmodal.guards.extension', 'xmodal.guards.check',"
        " 'xmodal.ltr.extension', 'xmodal.ltr.pipeline', 'asyncio'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_module_and_script_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    path = make_catalog(tmp_path)
    index = str(tmp_path / "idx")
    done = subprocess.run(
        [sys.executable, "-m", "xmodal.cli", "--index", index, *FAST, "add", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "added 9 items"
    script = Path(sys.executable).with_name("xmodal")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "xmodal.cli"]
    done = subprocess.run(
        [*command, "--index", index, "search", "red racing bicycle", "-k", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hits"][0]["id"] == "bike"
    done = subprocess.run(
        [*command, "--index", index, "search", "x", "-k", "0"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2 and "-k must be" in done.stderr


def test_search_explain_and_log_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "c.jsonl"
    catalog.write_text(
        '{"id": "a", "title": "red boots", "attributes": {"color": "red"}}\n'
        '{"id": "b", "title": "blue hat", "attributes": {"color": "blue"}}\n'
    )
    index = str(tmp_path / "idx")
    assert main(["--index", index, "--encoder", "hashing", "add", str(catalog), "-q"]) == 0
    capsys.readouterr()
    assert main(["--index", index, "search", "red boots", "--mode", "learned", "--explain", "--log", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hits"][0]["id"] == "a" and out["query_id"] and "plan" in out["explain"]
    assert main(["--index", index, "feedback", "event", out["query_id"], "a", "--event", "click"]) == 0
