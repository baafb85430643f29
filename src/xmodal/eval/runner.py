"""Scoring a query set with relevance judgments against an :class:`~xmodal.Engine`.

A query file is JSON Lines, one query a line::

    {"text": "a cup of coffee", "image": "queries/cup.jpg", "relevant": ["coffee", "mug-3"]}

``text`` or ``image`` or both (the image path is relative to the query file's folder), a non-empty list
``relevant`` of item ids, and optionally the query's ``kind`` (a name such as ``"name"`` or
``"descriptive"``: reports can be broken down by kind, see :mod:`xmodal.eval.compare`); other keys are
ignored. When the file belongs to a judged set (a ``set.json`` beside it, :mod:`xmodal.eval.sets`), a
``kind`` the set does not declare is an error of that line. Bad lines are reported and skipped. Metrics
(:mod:`xmodal.eval.metrics`) are averaged over the queries that ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError, XmodalError, brief
from ..ingest.catalog import check_image_path
from ..ingest.prepare import Rejection
from ..modes import check_mode
from ..records import Query, Target
from .metrics import METRICS, score_ranking

if TYPE_CHECKING:
    from ..engine import Engine


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One judged query: where it was read, its text and/or image path, the relevant ids and its kind."""

    where: str
    text: str | None
    image: str | None
    relevant: frozenset[str]
    kind: str | None = None
    #: the line's other scalar keys (``"language": "de"``): what ``xmodal eval --by FIELD`` groups by
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EvalReport:
    """Mean metrics over the queries that ran, how many ran, and the lines that were skipped."""

    k: int
    queries: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: list[Rejection] = field(default_factory=list)
    unknown_relevant: int = 0  # judged ids that are not in the index (they can never be found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "k": self.k,
            **{name: round(self.metrics.get(name, 0.0), 6) for name in METRICS},
            "unknown_relevant": self.unknown_relevant,
            "skipped": [{"where": r.where, "reason": r.reason} for r in self.skipped],
        }


def read_queries(path: str | Path, kinds: Collection[str] | None = None) -> Iterator[EvalQuery | Rejection]:
    """Stream the queries of a JSON Lines file; a bad line becomes a :class:`Rejection`, and so does a line
    whose ``kind`` is not one of ``kinds`` (when given: the kinds of the judged set the file belongs to)."""
    path = Path(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield _parse_query(raw, where, first=number == 1, kinds=kinds)
            except XmodalError as exc:
                yield Rejection(where, str(exc))


def _parse_query(raw: bytes, where: str, *, first: bool, kinds: Collection[str] | None = None) -> EvalQuery:
    try:
        obj = json.loads(raw.decode("utf-8-sig" if first else "utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("line", f"is not a JSON object ({exc})", "write one JSON object per line") from None
    if not isinstance(obj, dict):
        raise ValidationError("line", "is not a JSON object", '{"text": "...", "relevant": ["id"]}')
    text, image = obj.get("text"), obj.get("image")
    if text is not None and not isinstance(text, str):
        raise ValidationError("text", f"must be a string, got {type(text).__name__}", "quote it")
    if image is not None:
        image = check_image_path(image, allow_outside=True)
    if not (text and text.strip()) and not image:
        named = next((key for key in _TEXT_NAMES if isinstance(obj.get(key), str)), None)
        fix = f'the query text goes in "text": rename "{named}"' if named else "give a text, an image, or both"
        raise ValidationError("query", "has neither text nor image", fix)
    return EvalQuery(
        where,
        text or None,
        image or None,
        _relevant(obj.get("relevant")),
        _kind(obj.get("kind"), kinds),
        _fields(obj),
    )


def _fields(obj: Mapping[str, Any]) -> dict[str, str]:
    """The line's other keys whose values are strings, numbers or booleans, as strings."""
    return {
        str(key): str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in obj.items()
        if key not in _OWN and isinstance(value, (str, int, float, bool))
    }


_OWN = frozenset({"text", "image", "relevant"})
#: What other query files call a query's text (TREC topics, question sets): named in the error when "text" is missing.
_TEXT_NAMES = ("query", "question", "q", "title")


def _kind(value: object, kinds: Collection[str] | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("kind", f"must be a non-empty string, got {brief(value)}", 'write e.g. "kind": "name"')
    if kinds is not None and value not in kinds:
        raise ValidationError(
            "kind",
            f"{value!r} is not a kind of this judged set (its set.json declares {', '.join(sorted(kinds))})",
            "fix the line's kind, or declare the kind in set.json",
        )
    return value


def _relevant(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise ValidationError("relevant", "must be a non-empty list of item ids", 'write e.g. "relevant": ["id1"]')
    ids = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, (str, int)):
            raise ValidationError("relevant", f"{entry!r} is not an item id", "use strings")
        ids.append(str(entry))
    return frozenset(ids)


def evaluate(
    engine: Engine,
    queries: Iterable[EvalQuery | Rejection],
    *,
    base_dir: Path | None = None,
    k: int = 10,
    target: str | Target = Target.ANY,
    filters: Mapping[str, Any] | None = None,
    mode: str | None = None,
    strict: bool = False,
    progress: Callable[[int], object] | None = None,
) -> EvalReport:
    """Run every query (top ``k``) and average recall@1/5/10, MRR (within the top k) and nDCG@10.

    Options shared by all queries are checked first, so a bad ``k``, target, mode or filter raises a
    :class:`ValidationError` at once instead of skipping every query.
    """
    report = EvalReport(k=k)
    sums = dict.fromkeys(METRICS, 0.0)
    for scored in score_queries(
        engine,
        queries,
        report,
        base_dir=base_dir,
        k=k,
        target=target,
        filters=filters,
        mode=mode,
        strict=strict,
        progress=progress,
    ):
        for name, value in scored.metrics.items():
            sums[name] += value
    report.metrics = {name: total / report.queries if report.queries else 0.0 for name, total in sums.items()}
    return report


@dataclass(frozen=True, slots=True)
class Scored:
    """One query that ran, with its metrics."""

    query: EvalQuery
    metrics: dict[str, float]


def score_queries(
    engine: Engine,
    queries: Iterable[EvalQuery | Rejection],
    report: EvalReport,
    *,
    base_dir: Path | None = None,
    k: int = 10,
    target: str | Target = Target.ANY,
    filters: Mapping[str, Any] | None = None,
    mode: str | None = None,
    strict: bool = False,
    progress: Callable[[int], object] | None = None,
) -> Iterator[Scored]:
    """Run every query and yield its metrics; ``report`` counts the queries that ran, the skipped lines and
    the relevant ids the index lacks (its ``metrics`` are the caller's to fill). Shared options are checked
    before the first query (see :func:`evaluate`)."""
    filters = dict(filters or {})
    Query(text="check", k=k, target=Target.parse(target), filters=filters, mode=mode)
    if mode is not None:
        check_mode(mode, engine.settings["extensions"])
    engine.match_rows(filters, strict=strict)  # a bad filter fails here, before any query runs
    for entry in queries:
        if progress is not None:
            progress(1)
        if isinstance(entry, Rejection):
            report.skipped.append(entry)
            continue
        try:
            query = Query(
                text=entry.text,
                image=entry.image,
                filters=filters,
                k=k,
                target=Target.parse(target),
                mode=mode,
                strict=strict,
            )
            ranking = engine.search(query, base_dir=base_dir).hits.ids.tolist()
        except XmodalError as exc:
            report.skipped.append(Rejection(entry.where, str(exc)))
            continue
        report.unknown_relevant += sum(1 for item in entry.relevant if item not in engine)
        report.queries += 1
        yield Scored(entry, score_ranking(ranking, entry.relevant))
