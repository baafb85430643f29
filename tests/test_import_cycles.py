"""The import-cycle gate (scripts/import_cycles.py) on tiny synthetic packages: any cycle fails it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parent.parent / "scripts" / "import_cycles.py"


def make_package(root: Path, name: str, modules: dict[str, str]) -> None:
    package = root / name
    package.mkdir(parents=True)
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source, encoding="utf-8")


def check(root: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), "--path", str(root), name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_acyclic_package_passes(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        "calm",
        {
            "__init__": "from .top import run\n",
            "top": "from .middle import helper\n\ndef run() -> int:\n    return helper()\n",
            "middle": "from . import bottom\n\ndef helper() -> int:\n    return bottom.VALUE\n",
            "bottom": "VALUE = 1\n",
        },
    )
    done = check(tmp_path, "calm")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no import cycles in calm" in done.stdout


@pytest.mark.parametrize(
    ("back_import", "kind"),
    [
        ("from .top import run\n", "module level"),
        ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .top import run\n", "TYPE_CHECKING only"),
        ("def later() -> object:\n    from .top import run\n\n    return run\n", "inside a function"),
    ],
)
def test_any_cycle_fails_and_is_printed_as_a_chain(tmp_path: Path, back_import: str, kind: str) -> None:
    make_package(
        tmp_path,
        "knot",
        {
            "__init__": "",
            "top": "from .middle import helper\n\ndef run() -> int:\n    return helper()\n",
            "middle": "from .bottom import VALUE\n\ndef helper() -> int:\n    return VALUE\n",
            "bottom": "VALUE = 1\n" + back_import,
            "apart": "import json\n",
        },
    )
    done = check(tmp_path, "knot")
    assert done.returncode == 1, f"{kind}: {done.stdout}{done.stderr}"
    assert "import cycle: knot.bottom -> knot.top -> knot.middle -> knot.bottom" in done.stdout, done.stdout
    assert "FAILED: 1 import cycle(s) among 3 modules of knot" in done.stdout
    assert "apart" not in done.stdout


def test_every_cycle_is_printed(tmp_path: Path) -> None:
    make_package(
        tmp_path,
        "twice",
        {
            "__init__": "",
            "a": "from . import b\nfrom . import c\n",
            "b": "from . import a\n",
            "c": "from . import b\nfrom . import a\n",
            "d": "from . import e\n",
            "e": "from . import d\n",
        },
    )
    done = check(tmp_path, "twice")
    assert done.returncode == 1
    cycles = sorted(line for line in done.stdout.splitlines() if line.startswith("import cycle: "))
    assert cycles == [
        "import cycle: twice.a -> twice.b -> twice.a",
        "import cycle: twice.a -> twice.c -> twice.a",
        "import cycle: twice.a -> twice.c -> twice.b -> twice.a",
        "import cycle: twice.d -> twice.e -> twice.d",
    ]
