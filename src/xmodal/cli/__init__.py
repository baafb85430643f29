"""The ``xmodal`` command line: a thin adapter over :class:`xmodal.Engine`.

Each command module exposes ``register(subparsers)``, which adds its subcommands and sets
``handler`` to a ``run(args) -> int`` function. Modules are imported from the explicit list
:data:`COMMAND_MODULES`; one whose file does not exist (a feature not built yet) is skipped, any
other import error is raised. A command line naming a command of :data:`COMMANDS` imports only that
command's module (``xmodal search`` needs neither the server, the evaluation nor the red team); any
other (``xmodal --help``, no command, an unknown one, a malformed option) gets the full parser, so
help and usage errors list every command. Exit status: 0 success, 2 usage error, 1 any other error (its message
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
from typing import NoReturn

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
COMMANDS = {
    **dict.fromkeys(["add", "search", "similar", "get", "delete", "init", "info"], "core"),
    **dict.fromkeys(["count", "update"], "collection"),
    **dict.fromkeys(["scroll", "export"], "export"),
    "check": "check",
    **dict.fromkeys(["backup", "restore"], "backup"),
    "modes": "modes",
    "eval": "evaluate",
    "reindex": "reindex",
    **dict.fromkeys(["serve", "mcp"], "serve"),
    "genret": "genret",
    **dict.fromkeys(["feedback", "simulate", "train-ranker", "ltr"], "ltr"),
    **dict.fromkeys(["classify", "cluster", "dedup"], "tasks"),
    "redteam": "redteam",
    "audit": "audit",
}
"""Each top-level command → the module (of :data:`COMMAND_MODULES`) that registers it (a test checks
that this matches what the modules register)."""
PROG = "xmodal"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, with the subcommands of every command module that exists; with ``command`` (a
    key of :data:`COMMANDS`) only the subcommands of the module that registers it."""
    parser = argparse.ArgumentParser(prog=PROG, description="Self-hosted multimodal search.")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue  # that feature's commands are not built yet
        importlib.import_module(module_name).register(subparsers)
    for sub in subparsers.choices.values():
        add_global_options(sub, repeat=True)  # `xmodal search x --index DIR` works too
    return parser


class _NotPlain(Exception):
    """The command line is not ``[global options] COMMAND …`` (help, an unknown option, no command)."""


class _CommandFinder(argparse.ArgumentParser):
    """Reads the global options and the command name the way the full parser does, and nothing else."""

    def error(self, message: str) -> NoReturn:
        raise _NotPlain(message)


def command_of(argv: Sequence[str]) -> str | None:
    """The command that ``argv`` runs when it is a plain ``[global options] COMMAND …``, else None."""
    finder = _CommandFinder(prog=PROG, add_help=False)
    add_global_options(finder)
    finder.add_argument("command")
    finder.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        command = finder.parse_args(argv).command
    except _NotPlain:
        return None
    return command if command in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_of(argv))
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


__all__ = ["COMMANDS", "COMMAND_MODULES", "build_parser", "command_of", "main"]
