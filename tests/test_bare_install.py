"""``pip install .`` with no extras, in a fresh venv: ``import xmodal`` works and the reference parts run.

Offline: the venv is made without pip, xmodal is installed into it by this interpreter's pip with
``--no-deps --no-index --no-build-isolation`` (setuptools lent for the build only), and the three
required dependencies (numpy, pillow, tqdm, snowballstemmer, pystemmer, pyspellchecker) are lent from this environment through a ``.pth`` file
naming a folder of links to just those packages. Every optional dependency is really absent.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _required() -> tuple[str, ...]:
    """The distributions named in ``[project] dependencies`` of pyproject.toml (the bare install's)."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return tuple(re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower() for dep in deps)


REQUIRED = _required()
ABSENT = (
    "torch",
    "faiss",
    "fastapi",
    "uvicorn",
    "onnxruntime",
    "lightgbm",
    "mcp",
    "httpx",
    "safetensors",
    "sklearn",
    "skimage",
    "matplotlib",
    "setuptools",
)

CHECK = r"""
import importlib, json, sys
from pathlib import Path

import xmodal
from xmodal import Engine, Item, Query
from xmodal.errors import MissingDependency

out = {"file": xmodal.__file__, "present": [], "errors": {}}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        out["present"].append(name)
    except ImportError:
        pass
root = Path(sys.argv[2])
with Engine.open(root / "idx", encoder="hashing", index="exact") as engine:
    report = engine.add([
        Item.create("mug", title="blue coffee mug", attributes={"color": "blue"}),
        Item.create("shoe", title="red running shoe", attributes={"color": "red"}),
        Item.create("note", title="espresso", text="a strong coffee brewed under pressure"),
    ])
    out["added"], out["rejected"] = sorted(report.added), len(report.rejected)
    out["dense"] = list(engine.search(Query(text="coffee mug", mode="dense", k=2)).hits.ids)
    out["filtered"] = list(engine.search(Query(text="coffee", mode="dense", filters={"color": "red"})).hits.ids)
    out["get"] = engine.get("shoe").title
    out["deleted"] = engine.delete(["mug"])
    out["after_delete"] = sorted(engine.search(Query(text="coffee mug", mode="dense", k=5)).hits.ids)
    out["default_mode"] = sorted(engine.search(Query(text="coffee", k=5)).hits.ids)


def attempt(extra, call):
    try:
        call()
    except MissingDependency as exc:
        out["errors"][extra] = str(exc)
    except Exception as exc:
        out["errors"][extra] = f"{type(exc).__name__}: {exc}"
    else:
        out["errors"][extra] = "no error"


def offline_add():
    with Engine.open(root / "offline") as engine:  # the default encoder: the models extra
        engine.add([Item.create("a", title="a cup")])


def server():
    from xmodal.serve import create_app
    with Engine.open(root / "idx") as engine:
        create_app(engine)


def mcp():
    from xmodal.serve.mcp import build_mcp
    with Engine.open(root / "idx") as engine:
        build_mcp(engine)


attempt("ann", lambda: importlib.import_module("xmodal.index").create_index("hnsw", 8))
attempt("models", offline_add)
attempt("genret", lambda: importlib.import_module("xmodal.genret.train"))
attempt("ltr", lambda: importlib.import_module("xmodal.ltr.ranker").LambdaRanker())
attempt("server", server)
attempt("mcp", mcp)
attempt("client", lambda: xmodal.Client("http://127.0.0.1:1"))
print(json.dumps(out))
"""


def top_level_names(distribution: str) -> tuple[Path, list[str]]:
    """The folder a distribution is installed in and its top-level entries there (packages, .libs, dist-info)."""
    dist = importlib.metadata.distribution(distribution)
    site = Path(str(dist.locate_file("")))
    names = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
    return site, sorted(n for n in names if n != "__pycache__" and (site / n).exists())


def link_packages(folder: Path, distributions: tuple[str, ...]) -> Path:
    folder.mkdir()
    for distribution in distributions:
        site, names = top_level_names(distribution)
        for name in names:
            (folder / name).symlink_to(site / name)
    return folder


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding xmodal without extras, the required dependencies lent through a .pth file."""
    tmp = tmp_path_factory.mktemp("bare")
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], dict(os.environ), timeout=60)
    python = venv / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        pytest.skip(f"cannot create a venv with {sys.executable} -m venv: {made.stderr.strip()[-300:]}")
    project = tmp / "project"  # a copy, so the build leaves nothing in the checkout
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build_deps = link_packages(tmp / "build-deps", ("setuptools",))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "PYTHONPATH": str(build_deps),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    installed = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--no-cache-dir",
            str(project),
        ],
        env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env)
    required = link_packages(tmp / "required", REQUIRED)
    Path(site.stdout.strip(), "xmodal_test_required.pth").write_text(f"{required}\n")
    return venv


def bare_env(venv: Path) -> dict[str, str]:
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(venv.parent),
        "XMODAL_CACHE": str(venv.parent / "cache"),
        "HF_HUB_OFFLINE": "1",
    }


def test_bare_install_imports_and_runs_the_reference_parts(bare_venv: Path) -> None:
    work = bare_venv.parent / "work"
    work.mkdir()
    done = run(
        [str(bare_venv / "bin" / "python"), "-I", "-c", CHECK, json.dumps(ABSENT), str(work)], bare_env(bare_venv)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["file"].startswith(str(bare_venv)), out["file"]  # the installed copy, not the checkout
    assert out["present"] == [], f"optional dependencies leaked into the bare venv: {out['present']}"
    assert out["added"] == ["mug", "note", "shoe"] and out["rejected"] == 0
    assert out["dense"][0] == "mug" and len(out["dense"]) == 2
    assert out["filtered"] == ["shoe"]
    assert out["get"] == "red running shoe"
    assert out["deleted"] == 1 and out["after_delete"] == ["note", "shoe"]
    assert "mug" not in out["default_mode"]
    for extra, message in out["errors"].items():
        assert message.endswith(f"pip install 'xmodal[{extra}]'"), f"{extra}: {message}"


def test_bare_install_command_line(bare_venv: Path) -> None:
    index = bare_venv.parent / "cli-index"  # made with the hashing encoder, then used by the command line
    catalog = bare_venv.parent / "catalog.jsonl"
    catalog.write_text('{"id": "p1", "title": "red running shoe"}\n{"id": "p2", "title": "blue coffee mug"}\n')
    env = bare_env(bare_venv)
    xmodal = str(bare_venv / "bin" / "xmodal")
    added = run([xmodal, "--index", str(bare_venv.parent / "cli-offline"), "add", str(catalog), "-q"], env)
    assert added.returncode == 1 and added.stderr.strip().endswith("pip install 'xmodal[models]'"), added.stderr
    python = str(bare_venv / "bin" / "python")
    made = run(
        [python, "-I", "-c", f"import xmodal; xmodal.Engine.open({str(index)!r}, encoder='hashing').close()"], env
    )
    assert made.returncode == 0, made.stderr
    added = run([xmodal, "--index", str(index), "add", str(catalog), "--json"], env)
    assert added.returncode == 0, added.stderr
    found = run([xmodal, "--index", str(index), "search", "coffee mug", "--mode", "dense", "-k", "1", "--json"], env)
    assert found.returncode == 0, found.stderr
    assert "p2" in found.stdout
