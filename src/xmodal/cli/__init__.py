"""The ``xmodal`` command line: a thin adapter over :class:`xmodal.Engine`.

Each command module exposes ``register(subparsers)``, which adds its subcommands and sets
``handler`` to a ``run(args) -> int`` function. Modules are imported from the explicit list
:data:`COMMAND_MODULES`; one whose file does not exist (a feature not built yet) is skipped, any
other import error is raised. Exit status: 0 success, 2 usage error, 1 any other error (its message
on stderr, without a traceback for an :class:`~xmodal.errors.XmodalError`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence

from ..errors import XmodalError
from .common import UsageError, add_global_options

COMMAND_MODULES = [
    "core",
    "collection",
    "export",
    "check",
    "backup",
    "modes",
    "evaluate",
    "reindex",
    "serve",
    "genret",
    "ltr",
    "tasks",
    "redteam",
    "audit",
]
PROG = "xmodal"


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with the subcommands of every command module that exists."""
    parser = argparse.ArgumentParser(prog=PROG, description="Self-hosted multimodal search.")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue  # that feature's commands are not built yet
        importlib.import_module(module_name).register(subparsers)
    for command in subparsers.choices.values():
        add_global_options(command, repeat=True)  # `xmodal search x --index DIR` works too
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: give a command", file=sys.stderr)
        return 2
    try:
        return int(handler(args))
    except BrokenPipeError:  # `xmodal search … | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (XmodalError, OSError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: keep the traceback for the report
        traceback.print_exc()
        return 1


__all__ = ["COMMAND_MODULES", "build_parser", "main"]
