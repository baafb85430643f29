"""``xmodal eval QUERIES.jsonl``: recall@1/5/10, MRR and nDCG@10 of a judged query set.

With ``--by FIELD`` every metric per group of queries (a field of the query lines, or an attribute of their
relevant items) and the largest gap between groups (:mod:`xmodal.eval.fairness`).

With ``--mode all`` (or several modes, ``--mode dense,lexical,learned``) every mode is run on every
query and compared per query kind, with bootstrap intervals and each mode's difference from the best
single strategy (:mod:`xmodal.eval.compare`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..eval.compare import ALL, REPORTED, compare, parse_modes, probe
from ..eval.fairness import check_field, evaluate_by
from ..eval.metrics import METRICS
from ..eval.runner import EvalQuery, EvalReport, evaluate, read_queries
from ..eval.sets import HELD_OUT, SetInfo, set_info_for
from ..ingest.prepare import Rejection
from ..settings import DENSE
from .common import (
    MODES_EPILOG,
    HelpFormatter,
    UsageError,
    add_query_options,
    engine_of,
    print_json,
    progress_bar,
    query_options,
)

SHORT = {"ndcg@10": "nDCG@10", "recall@10": "R@10", "recall@1": "R@1", "mrr": "MRR"}
TARGETED = ("ndcg@10", "recall@10")  # the metrics whose difference from the best single strategy is shown


def register(subparsers: Any) -> None:
    """Add the ``eval`` subcommand."""
    parser = subparsers.add_parser(
        "eval",
        help="score a query set with relevance judgments (one mode, or every mode side by side)",
        description='QUERIES.jsonl holds one object a line: {"text": "...", "image": "path relative to the file", '
        '"relevant": ["id", ...], "kind": "name"} (text or image or both; kind optional; other keys ignored; '
        "bad lines are skipped and reported; with a set.json beside the file, a kind it does not declare is a "
        "bad line). -k is the search depth (MRR counts ranks within it). --mode all, or several modes "
        "separated by commas, compares the modes per query kind: nDCG@10, R@10, R@1 and MRR with bootstrap "
        "95% intervals, and each mode's difference from the best single strategy.",
        epilog=MODES_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("queries", metavar="QUERIES.jsonl")
    add_query_options(parser)
    parser.add_argument("--kind", metavar="KIND[,KIND]", help="only the queries of these kinds")
    parser.add_argument(
        "--versus",
        metavar="MODE[,MODE]",
        help="the single strategies the best is chosen from when comparing (default: every mode compared "
        "but the fusions learned, uniform, rrf and rsf)",
    )
    parser.add_argument(
        "--by",
        metavar="FIELD",
        help="fairness report: every metric per group of queries, grouped by FIELD of the query lines (e.g. "
        "language) or else by the attribute FIELD of their relevant items (e.g. category), with bootstrap "
        "intervals and the largest gap between groups",
    )
    parser.add_argument("--resamples", type=int, default=1000, metavar="N", help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default: 0)")
    parser.add_argument(
        "--encoder",
        dest="eval_encoder",
        choices=("current", "next", "both"),
        default=None,
        help="during a reindex: score the current vectors, the next ones (`xmodal reindex`), or both side by "
        "side, in dense mode",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.queries)
    if not path.is_file():
        raise UsageError(f"{path}: no such query file")
    spec = args.mode
    several = spec is not None and (spec.strip() == ALL or "," in spec)
    if several:
        args = argparse.Namespace(**{**vars(args), "mode": None})  # checked below, against the index's modes
    options = query_options(args)
    if not 1 <= args.resamples <= 100_000:
        raise UsageError(f"--resamples must be from 1 to 100000, got {args.resamples}")
    try:
        info = set_info_for(path)
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    entries = _only_kinds(list(read_queries(path, info.kinds if info else None)), args.kind, path)
    if not any(isinstance(e, EvalQuery) for e in entries):
        bad = [e for e in entries if isinstance(e, Rejection)]
        first = f"; {bad[0].where}: {bad[0].reason}" if bad else ""
        lines = f"{len(bad)} line{'' if len(bad) == 1 else 's'} skipped"
        raise UsageError(f"{path}: no query to evaluate ({lines}{first})")
    if getattr(args, "eval_encoder", None) is not None:
        if args.by is not None:
            raise UsageError("--by and --encoder do not combine: give one of them")
        if several or args.mode not in (None, DENSE):
            raise UsageError("--encoder compares the current and next vectors in dense mode: leave out --mode")
        return _versus_next(args, entries, path, options)
    if args.by is not None and several:
        raise UsageError("--by reports one mode per group: give one --mode (or none), not several")
    with engine_of(args) as engine:
        if several:
            return _compare(args, engine, entries, spec, info, options, path)
        if args.by is not None:
            return _by_group(args, engine, entries, options, path)
        with progress_bar(len(entries), "evaluating", "query", quiet=args.quiet) as bar:
            report = evaluate(engine, entries, base_dir=path.parent, progress=bar.update, **options)
        mode = options.get("mode")
        if mode is not None and mode.startswith("generative") and report.queries:  # shown by `xmodal genret status`
            from ..genret.extension import note_evaluation

            note_evaluation(engine, mode, str(path), report.to_dict())
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"queries     {report.queries} (k={report.k}, skipped {len(report.skipped)})")
        for name in METRICS:
            print(f"{name:<11} {report.metrics[name]:.4f}")
        if report.unknown_relevant:
            print(f"warning: {report.unknown_relevant} relevant id(s) are not in the index")
        for rejection in report.skipped:
            print(f"skipped {rejection.where}: {rejection.reason}")
    return 0 if report.queries else 1


def _versus_next(
    args: argparse.Namespace, entries: list[EvalQuery | Rejection], path: Path, options: dict[str, Any]
) -> int:
    """``eval --encoder current|next|both``: dense-mode metrics of the current vectors and/or the next ones."""
    from ..migration import Reindex
    from ..migration.evaluate import evaluate_next

    if options.get("filters") and args.eval_encoder != "current":
        raise UsageError("--encoder next scores every item: leave out the filters (or use --encoder current)")
    reports: dict[str, EvalReport] = {}
    if args.eval_encoder in ("current", "both"):
        with engine_of(args) as engine, progress_bar(len(entries), "current", "query", quiet=args.quiet) as bar:
            reports["current"] = evaluate(
                engine, entries, base_dir=path.parent, progress=bar.update, **{**options, "mode": DENSE}
            )
    if args.eval_encoder in ("next", "both"):
        with Reindex(args.index) as job, progress_bar(len(entries), "next", "query", quiet=args.quiet) as bar:
            status = job.status()
            if status["state"] == "none":
                raise UsageError("no reindex is under way: start one with `xmodal reindex --encoder NAME`")
            kept = {key: options[key] for key in ("k", "target") if key in options}
            reports["next"] = evaluate_next(job, entries, base_dir=path.parent, progress=bar.update, **kept)
            if not status["scanned"]:
                print(
                    f"warning: the next vectors cover {status['done']} of {status['total']} items so far",
                    file=sys.stderr,
                )
    if args.json:
        print_json({name: report.to_dict() for name, report in reports.items()})
    else:
        names = list(reports)
        print(f"{'':<11}" + "".join(f"{name:>10}" for name in names))
        print(f"{'queries':<11}" + "".join(f"{reports[n].queries:>10}" for n in names))
        for metric in METRICS:
            print(f"{metric:<11}" + "".join(f"{reports[n].metrics[metric]:>10.4f}" for n in names))
    return 0 if all(report.queries for report in reports.values()) else 1


def _by_group(
    args: argparse.Namespace, engine: Any, entries: list[EvalQuery | Rejection], options: dict[str, Any], path: Path
) -> int:
    try:
        check_field(args.by)
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    with progress_bar(len(entries), f"evaluating by {args.by}", "query", quiet=args.quiet) as bar:
        result = evaluate_by(
            engine,
            entries,
            args.by,
            resamples=args.resamples,
            seed=args.seed,
            base_dir=path.parent,
            progress=bar.update,
            **options,
        )
    report = result.to_dict()
    if args.json:
        print_json(report)
    else:
        print("\n".join(fairness_lines(report, str(path))))
    return 0 if result.report.queries else 1


def fairness_lines(report: dict[str, Any], source: str) -> list[str]:
    """The fairness report as text: a line per group, then the largest gap per metric."""
    boot = report["bootstrap"]
    lines = [
        f"{source}: {report['queries']} queries by {report['by']}, k={report['k']}; [low, high] = "
        f"{boot['confidence']:.0%} bootstrap interval ({boot['resamples']} resamples, seed {boot['seed']})"
    ]
    width = max([len("group"), *(len(g["group"]) for g in report["groups"])]) + 2
    lines.append(f"  {'group':<{width}}{'queries':<9}" + "".join(f"{SHORT.get(m, m):<24}" for m in METRICS))
    for group in report["groups"]:
        cells = "".join(f"{_cell(group[m]):<24}" for m in METRICS)
        lines.append(f"  {group['group']:<{width}}{group['queries']:<9}{cells}".rstrip())
    for metric, gap in report["largest_gap"].items():
        if gap is None:
            lines.append(f"largest gap {SHORT.get(metric, metric)}: one group only")
        else:
            lines.append(f"largest gap {SHORT.get(metric, metric)}: {_cell(gap)} ({gap['best']} over {gap['worst']})")
    if report["unknown_relevant"]:
        lines.append(f"warning: {report['unknown_relevant']} relevant id(s) are not in the index")
    for rejection in report["skipped"]:
        lines.append(f"skipped {rejection['where']}: {rejection['reason']}")
    return lines


def _only_kinds(entries: list[EvalQuery | Rejection], spec: str | None, path: Path) -> list[EvalQuery | Rejection]:
    """The entries of the kinds ``--kind`` names (all without it); a kind no query has is a usage error."""
    if spec is None:
        return entries
    wanted = [kind.strip() for kind in spec.split(",") if kind.strip()]
    present = sorted({e.kind for e in entries if isinstance(e, EvalQuery) and e.kind is not None})
    for kind in wanted or [spec]:
        if kind not in present:
            known = ", ".join(present) if present else "none: its queries have no kind field"
            raise UsageError(f"--kind {kind!r}: no query of that kind in {path} (its kinds: {known})")
    return [e for e in entries if isinstance(e, Rejection) or e.kind in wanted]


def _compare(
    args: argparse.Namespace,
    engine: Any,
    entries: list[EvalQuery | Rejection],
    spec: str,
    info: SetInfo | None,
    options: dict[str, Any],
    path: Path,
) -> int:
    try:
        modes, every = parse_modes(spec, engine.modes())
    except ValidationError as exc:
        raise UsageError(f"--mode: {exc}") from None
    first = next((e for e in entries if isinstance(e, EvalQuery) and e.text), None)
    modes, unable = probe(engine, modes, first.text if first is not None and first.text else "probe")
    if unable and not every:
        mode, reason = unable[0]
        raise UsageError(f"--mode {mode!r} cannot run on this index: {reason} (or leave it out of --mode)")
    single = None
    if args.versus is not None:
        single = [name.strip() for name in args.versus.split(",") if name.strip()]
        outside = [name for name in single if name not in modes]
        if not single or outside:
            raise UsageError(f"--versus must name modes that are compared ({', '.join(modes)}), got {args.versus!r}")
    queries = sum(1 for e in entries if isinstance(e, EvalQuery))
    with progress_bar(queries, f"evaluating {len(modes)} modes", "query", quiet=args.quiet) as bar:
        result = compare(
            engine,
            entries,
            modes,
            single=single,
            set_info=info,
            base_dir=path.parent,
            resamples=args.resamples,
            seed=args.seed,
            progress=bar.update,
            **{k: v for k, v in options.items() if k != "mode"},
        )
    result.skipped_modes = unable
    report = result.to_dict()
    if args.json:
        print_json(report)
    else:
        print("\n".join(comparison_lines(report, str(path))))
    return 0 if result.kinds else 1


def _cell(interval: dict[str, float], signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(interval['mean'])} [{fmt.format(interval['low'])}, {fmt.format(interval['high'])}]"


def comparison_lines(report: dict[str, Any], source: str) -> list[str]:
    """The comparison as text: one block per query kind, a line per mode."""
    boot = report["bootstrap"]
    lines = [
        f"{source}: {report['queries']} queries, {len(report['modes'])} modes, k={report['k']}; "
        f"[low, high] = {boot['confidence']:.0%} bootstrap interval "
        f"({boot['resamples']} resamples, seed {boot['seed']})"
    ]
    for entry in report["skipped_modes"]:
        lines.append(f"skipped mode {entry['mode']}: {entry['reason']}")
    width = max(len(mode) for mode in report["modes"]) + 2
    for group in report["kinds"]:
        split = group["split"]
        tag = " HELD OUT (evaluated only, never tuned on)" if split == HELD_OUT else f" {split}" if split else ""
        best = group["best_single"]
        versus = ", ".join(f"{SHORT[m]} {best[m]}" for m in TARGETED if m in best)
        lines += [
            "",
            f"kind {group['kind']}{tag}: {group['queries']} queries" + (f"; best single: {versus}" if versus else ""),
        ]
        head = "".join(f"{SHORT[m]:<24}" for m in REPORTED)
        head += "".join(f"{'Δ' + SHORT[m] + ' vs best':<27}" for m in TARGETED if m in best)
        lines.append(f"  {'mode':<{width}}{head}".rstrip())
        for mode, stats in group["modes"].items():
            row = "".join(f"{_cell(stats[m]):<24}" for m in REPORTED)
            row += "".join(f"{_cell(stats['vs_best_single'][m], True):<27}" for m in TARGETED if m in best)
            lines.append(f"  {mode:<{width}}{row}".rstrip())
    for mode, failed in report["failed"].items():
        lines.append(f"mode {mode} failed on {failed['queries']} queries (scored 0), e.g. {failed['first']['reason']}")
    if report["unknown_relevant"]:
        lines.append(f"warning: {report['unknown_relevant']} relevant id(s) are not in the index")
    for rejection in report["skipped"]:
        lines.append(f"skipped {rejection['where']}: {rejection['reason']}")
    return lines
