"""Export ``alt-profanity-check``'s bundled model (scikit-learn ``TfidfVectorizer`` + ``CalibratedClassifierCV``
over ``LinearSVC``, stored with joblib) to the plain-JSON format of :mod:`.toxicity`, so that no user ever
loads a pickle. A developer's step, run once per release of that package::

    pip install 'alt-profanity-check==1.9.1'    # pins scikit-learn==1.9.1, joblib==1.6.0
    python -m xmodal.guards.toxicity_export --out src/xmodal/guards/toxicity_model.json.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from .toxicity import FORMAT, THRESHOLD, pack


def export() -> dict[str, Any]:
    """The model of the installed ``profanity_check`` package as a :mod:`.toxicity` document."""
    import joblib  # the package's own format; read here only, from the installed wheel

    data = resources.files("profanity_check").joinpath("data")
    vectorizer = joblib.load(str(data.joinpath("vectorizer.joblib")))
    model = joblib.load(str(data.joinpath("model.joblib")))
    if model.method != "sigmoid" or list(model.classes_) != [0, 1]:
        raise SystemExit(f"unexpected model: method {model.method!r}, classes {model.classes_!r}")
    words = [""] * len(vectorizer.vocabulary_)
    for word, col in vectorizer.vocabulary_.items():
        words[col] = word
    folds = model.calibrated_classifiers_
    coef = np.stack([np.asarray(c.estimator.coef_).ravel() for c in folds])
    intercept = np.array([float(np.asarray(c.estimator.intercept_).ravel()[0]) for c in folds])
    sigmoid = np.array([[c.calibrators[0].a_, c.calibrators[0].b_] for c in folds])
    return {
        "format": FORMAT,
        "source": f"alt-profanity-check {metadata.version('alt-profanity-check')}",
        "vocabulary": words,
        "folds": len(folds),
        "idf": pack(vectorizer.idf_),
        "coef": pack(coef),
        "intercept": pack(intercept),
        "sigmoid": pack(sigmoid),
        "threshold": THRESHOLD,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    raw = json.dumps(export(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    args.out.write_bytes(gzip.compress(raw, mtime=0))
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
