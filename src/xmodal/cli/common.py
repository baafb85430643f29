"""What every CLI command shares: global options, opening the engine, usage errors, output helpers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..audit import system_user
from ..engine import Engine
from ..errors import ValidationError
from ..extension import as_caller
from ..filters import parse_filter_json, parse_filters, parse_where
from ..location import is_postgres
from ..modes import describe_modes
from ..records import MAX_K, SAFE_LEVELS, Target


class UsageError(Exception):
    """A command line that cannot work as written (exit status 2)."""


def add_global_options(parser: argparse.ArgumentParser, *, repeat: bool = False) -> None:
    """``--index`` (every command) and the settings used only when a new index is created.

    With ``repeat`` (on a subcommand) the options are accepted after the command name too, and
    leave the values given before it alone unless given again.
    """
    options: list[tuple[str, dict[str, Any]]] = [
        (
            "--index",
            {
                "metavar": "DIR",
                "default": os.environ.get("XMODAL_INDEX"),
                "help": "the index folder, or postgres://USER@HOST:PORT/DB?vectors=…&media=DIR for a store "
                "shared by several servers (default: $XMODAL_INDEX)",
            },
        ),
        (
            "--encoder",
            {
                "metavar": "NAME",
                "default": None,
                "help": "encoder of a new index (default: offline); an existing index keeps its own",
            },
        ),
        (
            "--index-kind",
            {
                "metavar": "KIND",
                "default": None,
                "help": "vector index of a new local index: exact, hnsw, auto (default) or a registered kind",
            },
        ),
        (
            "--backend",
            {
                "metavar": "NAME",
                "default": None,
                "help": "vector backend of a new index: local (default), quantized (compressed vectors in memory, "
                "exact rescoring from disk) or 'package.module:Class'",
            },
        ),
        (
            "--option",
            {
                "metavar": "KEY=VALUE",
                "action": "append",
                "default": None,
                "help": "an option of a new index's vector backend or index kind (repeat for several; a VALUE "
                "that is JSON is read as JSON), e.g. --backend milvus --option uri=http://127.0.0.1:19530",
            },
        ),
        (
            "--media-loader",
            {
                "metavar": "PATH",
                "action": "append",
                "default": None,
                "help": "allow the media loader 'package.module:Loader' in this index's items and queries "
                "(recorded in the index settings; repeat for several)",
            },
        ),
        (
            "--dim",
            {
                "type": int,
                "default": None,
                "metavar": "N",
                "help": "Matryoshka dimension of a new index (default: the encoder's)",
            },
        ),
        (
            "--encoder-option",
            {
                "metavar": "KEY=VALUE",
                "action": "append",
                "dest": "encoder_option",
                "default": None,
                "help": "an option of the encoder (model=…, url=…, device=…; repeat for several): a new index "
                "records it (never a key or credential); an existing one takes only options it does not record",
            },
        ),
    ]
    for flag, spec in options:
        if repeat:
            spec = {**spec, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        try:
            parser.add_argument(flag, **spec)
        except argparse.ArgumentError:  # the command defines that option itself
            pass


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions and epilogs as usual, but keeps a text with line breaks (a table) as written."""

    def add_text(self, text: str | None) -> None:
        super().add_text(modes_epilog() if text == MODES_EPILOG else text)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def mode_lines() -> list[str]:
    """Every search mode, one aligned line each: its name and its description."""
    modes = describe_modes()
    width = max(map(len, modes), default=0)
    return [f"{name:<{width}}  {line}".rstrip() for name, line in modes.items()]


#: The epilog that :class:`HelpFormatter` replaces with :func:`modes_epilog` when the help is shown, so that
#: building a parser imports no extension (listing the modes imports every extension's class).
MODES_EPILOG = "\0search modes"


def modes_epilog() -> str:
    """The search modes with their descriptions, for a command's ``--help``."""
    lines = "".join(f"\n  {line}" for line in mode_lines())
    return f"search modes (--mode; default: the index's default mode):{lines}"


def add_target_option(parser: argparse.ArgumentParser) -> None:
    """``--target``: ``any`` or one vector kind of the index (checked when searched)."""
    parser.add_argument(
        "--target",
        default=Target.ANY.value,
        metavar="KIND",
        help="which item vectors to compare with: any (default, the best per item) or a vector kind of the "
        "index (text, image, combined with the bundled encoders; `xmodal info` lists them)",
    )


def add_query_options(parser: argparse.ArgumentParser, *, default_k: int = 10) -> None:
    """Options shared by ``search`` and ``eval``: filters, target vectors, mode, k."""
    add_filter_options(parser)
    add_target_option(parser)
    parser.add_argument(
        "--mode", default=None, help="search mode, listed below and by `xmodal modes` (default: the index's default)"
    )
    parser.add_argument("-k", type=int, default=default_k, metavar="N", help=f"number of hits (default: {default_k})")
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_guard_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--safe`` and ``--as-key``: the guards screen ``what`` as they screen a search's hits."""
    parser.add_argument(
        "--safe",
        choices=SAFE_LEVELS,
        default=None,
        help=f"SafeSearch level for sensitive images and toxic text in {what}: strict (withheld), moderate "
        "(the guards policy; default) or off",
    )
    parser.add_argument(
        "--as-key",
        metavar="NAME",
        default=None,
        help="apply the guards policy of the API key NAME ([keys.NAME] in the guards policy: e.g. an export key "
        "the policy lets read every item); default: the deployment's [default]",
    )


@contextmanager
def guarded_as(args: argparse.Namespace) -> Iterator[None]:
    """Run the block for the API key ``--as-key`` names (its guards policy), if any."""
    with as_caller(getattr(args, "as_key", None)):
        yield


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """``--where``, ``--filter`` and ``--strict``: the filter of a search, a count or a delete."""
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="attribute filter: =, !=, <, <=, >, >=, a|b for any of; FIELD may be a dotted path (meta.brand); "
        "repeat to combine",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="JSON",
        help="""a filter object in the full language (or/and/not, ne, exists, contains, $-operators...), e.g. """
        """'{"or": [{"tags": "red"}, {"price": {"lt": 20}}]}'; combined with --where, all must hold""",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a filter on an attribute no item has is an error (by default it matches nothing)",
    )


def query_options(args: argparse.Namespace) -> dict[str, Any]:
    """Checked ``filters``, ``k``, ``target`` and ``mode`` (only when given) from the command line, or a
    :class:`UsageError`."""
    filters = filters_of(args)
    if not 1 <= args.k <= MAX_K:
        raise UsageError(f"-k must be from 1 to {MAX_K}, got {args.k} (pass e.g. -k 10)")
    try:
        target = Target.parse(args.target)
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    options: dict[str, Any] = {"filters": filters, "k": args.k, "target": target, "strict": args.strict}
    if args.mode is not None:  # none given: the index's default mode
        options["mode"] = args.mode
    return options


def filters_of(args: argparse.Namespace) -> dict[str, Any]:
    """The checked filter object of ``--where`` and ``--filter`` (all must hold), or a :class:`UsageError`."""
    try:
        where, given = parse_where(list(args.where)), parse_filter_json(list(args.filter))
        filters: dict[str, Any] = {"and": [where, given]} if where and given else where or given
        parse_filters(filters)  # a range bound that is not a number is a usage error too
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    return filters


def index_options(given: list[str] | None) -> dict[str, Any] | None:
    """``--option KEY=VALUE`` flags as the index options of a new index (a JSON VALUE is read as JSON)."""
    if not given:
        return None
    options: dict[str, Any] = {}
    for text in given:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {text!r}: write it as KEY=VALUE (e.g. --option uri=http://127.0.0.1:19530)")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def open_engine(
    args: argparse.Namespace,
    *,
    create: bool = False,
    encoder: str | None = None,
    encoder_defaults: Mapping[str, Any] | None = None,
) -> Engine:
    """Open the index named by ``--index``; only ``create`` commands may make a new one. ``encoder`` and
    ``encoder_defaults`` (a server config's) apply where ``--encoder`` and ``--encoder-option`` say nothing."""
    if not args.index:
        raise UsageError("no index folder: pass --index DIR (or set XMODAL_INDEX)")
    if args.dim is not None and args.dim <= 0:
        raise UsageError(f"--dim must be positive, got {args.dim}")
    path: str | Path = args.index if is_postgres(args.index) else Path(args.index)  # a URL: the server says
    if isinstance(path, Path) and not create and not (path / "store.sqlite").is_file():
        raise UsageError(f"{path} is not an xmodal index (create it with: xmodal --index {path} add CATALOG)")
    return Engine.open(
        path,
        encoder=args.encoder or encoder,
        dim=args.dim,
        index=args.index_kind,
        index_options=index_options(getattr(args, "option", None)),
        backend=args.backend,
        media=getattr(args, "media_loader", None),
        encoder_options={
            **(encoder_defaults or {}),
            **encoder_options(getattr(args, "encoder_option", None) or []),
        },
    )


def encoder_options(pairs: list[str]) -> dict[str, Any]:
    """``--encoder-option KEY=VALUE`` pairs as a dict; a VALUE that reads as a JSON number, boolean, null, list
    or object is that, any other is a string (``--encoder-option model=ViT-B-32``, ``… batch_size=16``)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--encoder-option {pair!r}: write it as KEY=VALUE, e.g. --encoder-option model=NAME")
        try:
            value: Any = json.loads(raw)
            if isinstance(value, str):
                value = raw
        except ValueError:
            value = raw
        options[key.strip()] = value
    return options


def cli_actor() -> str:
    """The name the audit log records a command-line delete under: ``cli:<user>``."""
    return f"cli:{system_user()}"


@contextmanager
def engine_of(args: argparse.Namespace, *, create: bool = False) -> Iterator[Engine]:
    """``with engine_of(args) as engine:`` — opened from the global options, closed afterwards. A ``--mode``
    that the index does not provide (its extensions decide), or a ``--target`` kind it has not, is a usage
    error."""
    engine = open_engine(args, create=create)
    try:
        mode = getattr(args, "mode", None)
        if mode is not None and mode not in engine.modes():
            raise UsageError(f"unknown --mode {mode!r} (use one of {', '.join(engine.modes())})")
        target = getattr(args, "target", Target.ANY)
        if target != Target.ANY and target not in engine.vector_kinds():
            raise UsageError(f"unknown --target {target!r} (use one of {', '.join(['any', *engine.vector_kinds()])})")
        yield engine
    finally:
        engine.close()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=None)
    sys.stdout.write("\n")


def progress_bar(total: int | None, desc: str, unit: str, *, quiet: bool = False) -> Any:
    """A tqdm bar on stderr (shown on terminals only, never with ``quiet``); use it with ``with``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=True if quiet else None, leave=False)


STAGES = {"pages": "pages read", "ocr": "pages OCR'd", "chunks": "text chunks"}


class StageBars:
    """One progress bar per stage a splitter reports (``pages``, ``ocr``, ``decode``, ``transcribe``…),
    opened when the stage first reports; use it with ``with`` and pass :meth:`update` as the progress."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def update(self, stage: str, n: int = 1) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = progress_bar(None, STAGES.get(stage, stage), "", quiet=self.quiet)
        bar.update(n)

    def __enter__(self) -> StageBars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars.values():
            bar.close()


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
