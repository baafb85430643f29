"""Two parts of the costliest anonymous text search, each against its peer in the same run: the query guard's
rules with and without the shortcut that skips a rule a text cannot match (:func:`xmodal.guards.rules.matching`),
and a filtered search with its filter parsed once and at every stage (:func:`xmodal.filters.parsed_once`).

Run:  python benchmarks/bench_abuse_parts.py [--items 3000] [--filter-values 10000] [--repeat 9]

The query is the one ``bench_abuse.py`` sends: WordNet glosses, 1,472 characters (the longest the default guards
let through there), k = 1,000, the default (learned) mode, over the same cached index of ``--items`` WordNet items
(offline encoder; built by ``bench_abuse.py`` if missing); the filtered search adds its two membership lists of
``--filter-values`` values. Each figure is the median thread CPU of ``--repeat`` runs, in ms; the peers are the
same code with the shortcut off (every rule searched) and with nothing kept between parses (``MEMO_SIZE = 0``).
The findings and the hits must be the same either way (checked here too). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_abuse import cached_index, long_text
from serverutil import wordnet

import xmodal.filters.expr as filter_expr
from xmodal import Engine, Query
from xmodal.guards import readings, rules
from xmodal.guards.normalize import normalize

TEXT_CHARS = 1472


def cpu_ms(fn: Callable[[], Any], repeat: int) -> float:
    """The median thread CPU of ``repeat`` calls of ``fn``, in ms."""
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        times.append((time.thread_time() - start) * 1000)
    return round(statistics.median(times), 2)


def guard_part(text: str, repeat: int) -> dict[str, Any]:
    norm = normalize(text).text
    first = rules.scan(norm)

    def guard() -> list[rules.Finding]:
        return readings.scan_query(norm, rules.scan(norm))

    found = guard()  # the readings are cached from here on: both sides scan the same ones
    fast = cpu_ms(guard, repeat)
    original = rules._may_match
    rules._may_match = lambda rule, lowered: True  # type: ignore[assignment]
    try:
        slow = cpu_ms(guard, repeat)
        same = guard() == found
    finally:
        rules._may_match = original
    return {
        "rule_passes_ms": {"shortcut": fast, "every_rule": slow, "ratio": round(fast / slow, 3)},
        "findings": [f.rule for f in first + found],
        "same_findings": same,
    }


def filter_part(engine: Engine, text: str, filter_values: int, repeat: int) -> dict[str, Any]:
    filters = {
        "pos": ["noun", "verb", "adj", "adv", *(f"pos-{i}" for i in range(filter_values))],
        "lexname": [f"noun.{w}" for w in ("artifact", "act", "person", "plant", "animal")]
        + [f"lexname-{i}" for i in range(filter_values)],
    }
    query = Query(text=text, k=1000, filters=filters)
    parses: list[int] = []
    original = filter_expr.parse_filters

    def counting(given: Any) -> Any:
        parses.append(1)
        return original(given)

    filter_expr.parse_filters = counting
    try:
        once_hits = engine.search(query).hits.ids.tolist()
        parses.clear()
        engine.search(query)
        once_parses = len(parses)
        once = cpu_ms(lambda: engine.search(query), repeat)
        filter_expr.MEMO_SIZE = 0  # nothing kept: parsed at every stage, as before
        every_hits = engine.search(query).hits.ids.tolist()
        parses.clear()
        engine.search(query)
        every_parses = len(parses)
        every = cpu_ms(lambda: engine.search(query), repeat)
    finally:
        filter_expr.parse_filters = original
        filter_expr.MEMO_SIZE = 8
    one_parse = cpu_ms(lambda: filter_expr.FilterExpr.parse(filters), repeat)
    return {
        "filtered_search_ms": {"parsed_once": once, "parsed_at_every_stage": every, "saved": round(every - once, 1)},
        "parses_per_search": {"parsed_once": once_parses, "parsed_at_every_stage": every_parses},
        "one_parse_ms": one_parse,
        "hits": len(once_hits),
        "same_hits": once_hits == every_hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--filter-values", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    items, _ = wordnet(args.items, 0)
    text = long_text([item.text or "" for item in items[:200]], TEXT_CHARS)
    index, _ = cached_index(args.items, "offline")
    result: dict[str, Any] = {
        "benchmark": "abuse_parts",
        "items": args.items,
        "text_chars": len(text),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "guard": guard_part(text, args.repeat),
    }
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-abuse-parts-") as tmp:
        shutil.copytree(index, Path(tmp) / "idx")
        with Engine.open(Path(tmp) / "idx") as engine:
            engine.search(Query(text=text, k=1000))  # the models loaded
            result["filters"] = filter_part(engine, text, args.filter_values, args.repeat)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
