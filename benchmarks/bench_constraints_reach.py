"""Which queries of the judged sets does query understanding read a constraint in: a negated value ("shirt not
blue") or a price bound ("bag under 50")? Their default-mode results are the only ones that reading (the
constraint kept by every run, :meth:`Understanding.constraints`) can change.

Run:  python benchmarks/bench_constraints_reach.py ITEMS PER_KIND     # e.g. 10000 300

Builds each judged set (``xmodal.eval.judged``: WordNet, Debian, manual pages) at that size, indexes its catalog
(hashing encoder) and runs :meth:`QueryUnderstanding.understand` on every query. Prints per set the queries, those
holding a negation word, and those read with a constraint (with their kind, text and constraint).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from xmodal import Engine
from xmodal.eval.judged import build_set
from xmodal.ltr.extension import pipeline
from xmodal.ltr.strategies.structured import NEGATIONS


def main() -> None:
    items, per_kind = int(sys.argv[1]), int(sys.argv[2])
    out = {}
    for name in ("wordnet", "debian", "manpages"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(build_set(name, Path(tmp) / "set", items=items, per_kind=per_kind, seed=0).folder)
            index = f"{tmp}/idx"
            add = [sys.executable, "-m", "xmodal.cli", "--index", index, "--encoder", "hashing", "add"]
            subprocess.run([*add, str(folder / "catalog.jsonl")], check=True, capture_output=True)
            with Engine.open(index) as engine:
                understanding = pipeline(engine).understanding
                queries = [json.loads(line) for line in open(folder / "queries.jsonl", encoding="utf-8")]
                cue = [q for q in queries if NEGATIONS & set(q["text"].lower().split())]
                read = [
                    {"kind": q["kind"], "text": q["text"], "constraints": kept}
                    for q in queries
                    if (kept := understanding.understand(q["text"]).constraints()) is not None
                ]
        out[name] = {"queries": len(queries), "with_a_negation_word": len(cue), "read_with_a_constraint": read}
    print(json.dumps({"benchmark": "constraints_reach", "items": items, "per_kind": per_kind, "sets": out}, indent=2))


if __name__ == "__main__":
    main()
