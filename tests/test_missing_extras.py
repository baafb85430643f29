"""Each optional part without its extra raises the documented error where it is made.

The documented error is :class:`xmodal.errors.MissingDependency` (an ``ImportError``) whose message
ends with ``pip install 'xmodal[<extra>]'``. Absence is simulated in a subprocess by putting ``None``
into ``sys.modules`` for the dependency before xmodal is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xmodal

SRC = Path(xmodal.__file__).resolve().parent.parent

RUN = """
import json, sys
for _name in json.loads(sys.argv[1]):
    sys.modules[_name] = None
from pathlib import Path
tmp = Path(sys.argv[2])
try:
{body}
except BaseException as exc:
    from xmodal.errors import MissingDependency
    print(json.dumps({{"type": type(exc).__name__, "documented": isinstance(exc, MissingDependency),
                      "import_error": isinstance(exc, ImportError), "message": str(exc)}}))
else:
    print(json.dumps({{"type": None}}))
"""

HASHING_ENGINE = "import xmodal\nengine = xmodal.Engine.open(tmp / 'idx', encoder='hashing', index='exact')\n"


def run_without(blocked: list[str], body: str, tmp: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``body`` with the ``blocked`` modules absent; what it raised, if anything."""
    script = RUN.format(body=textwrap.indent(body, "    "))
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "XMODAL_CACHE": str(tmp / "cache"),
        **(env or {}),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(blocked), str(tmp)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outcome: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    outcome["stderr"] = done.stderr
    return outcome


def assert_documented(outcome: dict[str, object], extra: str) -> None:
    assert outcome["type"] == "MissingDependency", outcome
    assert outcome["documented"] and outcome["import_error"], outcome
    assert str(outcome["message"]).endswith(f"pip install 'xmodal[{extra}]'"), outcome


def cli(args: str) -> str:
    """A body that runs ``xmodal ARGS`` and raises SystemExit carrying its stderr when it fails."""
    return textwrap.dedent(f"""
        import contextlib, io, shlex
        from xmodal.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(shlex.split({args!r}.replace("TMP", str(tmp))))
        if code:
            raise SystemExit(f"exit {{code}}: {{err.getvalue().strip()}}")
    """)


CASES = [
    pytest.param(
        ["faiss"], "from xmodal.index import create_index\ncreate_index('hnsw', 8)", "ann", id="ann-hnsw-index"
    ),
    pytest.param(
        ["psycopg"],
        "import xmodal\nxmodal.Engine.open('postgres://127.0.0.1:1/x?state=' + str(tmp / 's'), encoder='hashing')",
        "postgres",
        id="postgres-engine-open",
    ),
    pytest.param(
        ["faiss"],
        "import xmodal\nxmodal.Engine.open(tmp / 'idx', encoder='hashing', index='hnsw')",
        "ann",
        id="ann-engine-open",
    ),
    pytest.param(
        ["onnxruntime"],
        "from xmodal.encoders import create_encoder\ncreate_encoder('offline')",
        "models",
        id="models-offline-factory",
    ),
    pytest.param(
        ["onnxruntime"],
        "from xmodal.encoders import Content, create_encoder\n"
        "create_encoder('offline').encode_queries([Content(text='a cup')])",
        "models",
        id="models-offline-first-encode-no-onnxruntime",
    ),
    pytest.param(
        ["torch"],
        "from xmodal.encoders import Content, create_encoder\n"
        "create_encoder('offline').encode_queries([Content(text='a cup')])",
        "models",
        id="models-offline-first-encode-no-torch",
    ),
    pytest.param(["torch"], "from xmodal.genret import train", "genret", id="genret-train"),
    pytest.param(["torch"], "from xmodal.genret.build import train_engine", "genret", id="genret-build"),
    pytest.param(
        ["safetensors"], "from xmodal.genret.model import GenerativeIndex", "genret", id="genret-no-safetensors"
    ),
    pytest.param(
        ["torch"],
        HASHING_ENGINE + "engine.add([xmodal.Item.create('a', title='a cup')])\n"
        "engine.search(xmodal.Query(text='cup', mode='generative'))",
        "genret",
        id="genret-search-mode",
    ),
    pytest.param(
        ["torch"],
        HASHING_ENGINE + "engine.close()\n" + cli("--index TMP/idx genret train"),
        "genret",
        id="genret-cli-train",
    ),
    pytest.param(["lightgbm"], "from xmodal.ltr.ranker import LambdaRanker\nLambdaRanker()", "ltr", id="ltr-ranker"),
    pytest.param(
        ["fastapi"],
        HASHING_ENGINE + "from xmodal.serve import create_app\ncreate_app(engine)",
        "server",
        id="server-create-app",
    ),
    pytest.param(["fastapi"], "import xmodal.serve.app", "server", id="server-app-module"),
    pytest.param(
        ["python_multipart", "multipart"],
        HASHING_ENGINE + "from xmodal.serve import create_app\ncreate_app(engine)",
        "server",
        id="server-no-multipart",
    ),
    pytest.param(
        ["uvicorn"],
        HASHING_ENGINE + "engine.close()\n" + cli("--index TMP/idx serve --port 1"),
        "server",
        id="server-cli-serve",
    ),
    pytest.param(
        ["mcp"], HASHING_ENGINE + "from xmodal.serve.mcp import build_mcp\nbuild_mcp(engine)", "mcp", id="mcp-build"
    ),
    pytest.param(["mcp"], HASHING_ENGINE + "engine.close()\n" + cli("--index TMP/idx mcp"), "mcp", id="mcp-cli"),
    pytest.param(["httpx"], "import xmodal\nxmodal.Client('http://127.0.0.1:1')", "client", id="client-lazy-export"),
    pytest.param(["httpx"], "from xmodal.client import AsyncClient", "client", id="client-module"),
    pytest.param(
        ["pyarrow"],
        HASHING_ENGINE
        + "engine.add([xmodal.Item.create('a', title='a cup')])\n"
        + "engine.export(tmp / 'out.parquet')",
        "export",
        id="export-parquet",
    ),
    pytest.param(
        ["pyarrow"],
        HASHING_ENGINE + "engine.close()\n" + cli("--index TMP/idx export TMP/x.parquet"),
        "export",
        id="export-cli",
    ),
    pytest.param(
        ["langchain_core"], "from xmodal.integrations.langchain import XmodalVectorStore", "langchain", id="langchain"
    ),
    pytest.param(
        ["llama_index", "llama_index.core"],
        "from xmodal.integrations.llamaindex import XmodalVectorStore",
        "llamaindex",
        id="llamaindex",
    ),
    pytest.param(
        ["matplotlib"],
        "from xmodal.ltr.simreport import write_report\nwrite_report({}, tmp / 'out')",
        "eval",
        id="eval-simulation-report",
    ),
]


@pytest.mark.parametrize(("blocked", "body", "extra"), CASES)
def test_missing_extra_gives_the_documented_error(tmp_path: Path, blocked: list[str], body: str, extra: str) -> None:
    outcome = run_without(blocked, body, tmp_path)
    if outcome["type"] == "SystemExit":  # the command line: exit status 1 and the message on stderr
        assert str(outcome["message"]).startswith("exit 1: "), outcome
        assert str(outcome["message"]).endswith(f"pip install 'xmodal[{extra}]'"), outcome
        assert "Traceback" not in str(outcome["message"])
    else:
        assert_documented(outcome, extra)


def test_auto_index_without_faiss_stays_exact_and_says_which_extra(tmp_path: Path) -> None:
    body = textwrap.dedent("""
        import numpy as np
        from xmodal.index import create_index
        index = create_index("auto", 4, threshold=3)
        vectors = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
        index.add(np.arange(5), vectors)
        assert index.inner_kind == "exact", index.inner_kind
        labels, _ = index.search(vectors[:1], 1)
        assert int(labels[0][0]) in (0, 4)
    """)
    outcome = run_without(["faiss"], body, tmp_path)
    assert outcome["type"] is None, outcome
    assert "pip install 'xmodal[ann]'" in str(outcome["stderr"])


def test_samples_skip_photos_naming_the_extra(tmp_path: Path) -> None:
    body = textwrap.dedent("""
        from xmodal import samples
        notes = []
        assert list(samples._photos(tmp, notes.append)) == []  # every photo skipped, with a note
        print(json.dumps(notes), file=sys.stderr)
        samples._load_photo(samples.PHOTOS[0])
    """)
    outcome = run_without(["skimage", "sklearn", "matplotlib"], body, tmp_path)
    assert_documented(outcome, "samples")
    notes = json.loads(str(outcome["stderr"]).strip().splitlines()[-1])
    assert {note.split("photo")[0] for note in notes} == {
        "samples: skipping the skimage ",
        "samples: skipping the scikit-learn ",
        "samples: skipping the matplotlib ",
    }
    for note in notes:
        assert note.endswith("pip install 'xmodal[samples]'"), note
