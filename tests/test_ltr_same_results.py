"""The learned search returns what it returned before its latency work (issue 12): the same ids, scores and
explanations on a seeded catalog with feedback, a trained ranker, exploration, repeats, a filter and users.

``tests/data/ltr_same_results.json`` was written by this file's ``__main__`` on main at 2bbd0ea, before the
per-search changes of branch ``lat12c`` (fusion on plain lists, the ranker's features gathered per column, the
memory index read once per query): a speed-up must not change a result. Floats are compared to 1e-9 (relative),
so a platform whose BLAS sums in another order passes while any real change of a score fails; ids, order and
every other value exactly. Regenerate it only from a commit whose results are known right:
``PYTHONPATH=src python -m tests.test_ltr_same_results``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xmodal import Engine
from xmodal.encoders import HashingEncoder
from xmodal.ltr import explore_config
from xmodal.ltr.exploration import ExploreSettings
from xmodal.ltr.train import train_ranker

from .test_ltr_strategies import products

GOLDEN = Path(__file__).parent / "data" / "ltr_same_results.json"
FROZEN = 2_000_000_000.0  # the clock the context's hour/weekday and the items' freshness are read from

TRAINING = ["red boots", "leather bags", "blue canvas sneakers", "green sandals", "black suede boots", "comfortable"]
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("red boots", {}),
    ("red boots", {}),  # a repeat in the same state: its top is kept
    ("leather", {"user": "u1"}),  # a named user: may explore
    ("blue canvas sneakers", {}),
    ("suede", {"filters": {"color": "black"}}),
    ("product number 7", {}),
    ("zzz unknown", {}),
    ("green sandals", {"user": "u2"}),
    ("comfortable", {"k": 20}),
]


def learned_results(folder: Path) -> list[dict[str, Any]]:
    """Train on 18 logged searches with seeded clicks (policy, memory index, ranker), then search: each
    search's ids, scores and explanation (as JSON would carry them)."""
    explore_config.save(folder / "idx" / "ltr", ExploreSettings(budget=1.0))  # every eligible search may explore
    engine = Engine.open(folder / "idx", encoder=HashingEncoder(), index="exact")
    try:
        engine.add(products(150))
        rng = np.random.default_rng(0)
        for i, text in enumerate(TRAINING * 3):
            r = engine.search(text, mode="learned", k=8, log=True, user=f"u{i % 3}")
            assert r.query_id is not None
            engine.feedback(r.query_id, r.hits.ids[int(rng.integers(len(r.hits)))], "click")
        train_ranker(engine, n_estimators=20)
        out = []
        for text, extra in QUERIES:
            r = engine.search(text, mode="learned", explain=True, log=True, **{"k": 8, **extra})
            out.append(
                {"q": text, "ids": list(r.hits.ids), "scores": [float(s) for s in r.hits.scores], "explain": r.explain}
            )
    finally:
        engine.close()
    loaded: list[dict[str, Any]] = json.loads(json.dumps(out, sort_keys=True, default=str))
    return loaded


def _same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {got!r} != {want!r}"
    elif isinstance(want, dict) and isinstance(got, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    else:
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def test_the_learned_search_returns_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: FROZEN)
    got = learned_results(tmp_path)
    want = json.loads(GOLDEN.read_text())
    assert len(want) == len(QUERIES) and all(w["ids"] for w in want[:6])  # the golden file is not empty
    _same(got, want, "results")


def test_the_comparison_catches_a_changed_score() -> None:
    want = json.loads(GOLDEN.read_text())
    changed = json.loads(GOLDEN.read_text())
    changed[0]["scores"][0] *= 1 + 1e-6
    with pytest.raises(AssertionError, match="scores"):
        _same(changed, want, "results")
    swapped = json.loads(GOLDEN.read_text())
    swapped[3]["ids"][0], swapped[3]["ids"][1] = swapped[3]["ids"][1], swapped[3]["ids"][0]
    with pytest.raises(AssertionError, match="ids"):
        _same(swapped, want, "results")


if __name__ == "__main__":  # write the golden file (see the module docstring)
    import tempfile

    time.time = lambda: FROZEN
    results = learned_results(Path(tempfile.mkdtemp()))
    GOLDEN.write_text(json.dumps(results, sort_keys=True, indent=1) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}: {len(results)} searches\n")
