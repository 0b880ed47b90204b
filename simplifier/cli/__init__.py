"""The ``simplifier`` command. Each subcommand is a module of this package with a ``register``
function that adds its parser and sets ``func``; add a module name to COMMANDS to add one.

Only the module of the command being run is imported (a command's dependencies load when it
runs, not when another one does); ``--help`` without a command imports them all to list them.
``--example NAME`` anywhere on the line stands for the shipped corpus file ``NAME``.

Exit codes: 0 success, 1 a negative answer (e.g. not equivalent), 2 bad input. With ``--json``
an error is printed as a JSON report too (``{"schema_version": ..., "errors": [...]}``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from simplifier import __version__
from simplifier.errors import ProgramError, UsageError

COMMANDS = ["check", "equiv", "analyze", "hash", "simplify", "ablate", "emit", "search"]

SCHEMA_VERSION = 1
"""The version of every ``--json`` report's layout (``"schema_version"``); see docs/cli.md."""

EPILOG = (
    "--example NAME stands for a program shipped with the package (e.g. --example program4; "
    "`python -c 'import simplifier; print(simplifier.example_names())'` lists them). "
    "Exit codes: 0 success, 1 a negative answer, 2 bad input."
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser; a usage error is also a JSON report when the line has ``--json``."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            from simplifier.cli.common import print_json

            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
            print_json({"errors": [error_json(UsageError(message))]})
            sys.exit(2)
        super().error(message)


def build_parser(only: str | None = None, *, commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that subcommand's (its module alone imported);
    without ``commands``, none (enough for ``--version``)."""
    parser = _Parser(
        prog="simplifier",
        description="Analyse, simplify, verify and compile optimizer programs "
        "(the language of the Lion paper).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"simplifier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ([only] if only in COMMANDS else COMMANDS) if commands else []:
        importlib.import_module(f"simplifier.cli.{name}").register(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the line: the first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def _expand_examples(argv: Sequence[str]) -> list[str]:
    """``--example NAME`` (or ``--example=NAME``) -> the path of that shipped program."""
    from simplifier.examples import example_path

    out: list[str] = []
    items = iter(argv)
    for a in items:
        if a == "--example" or a.startswith("--example="):
            name = a.partition("=")[2] if "=" in a else next(items, None)
            if not name:
                raise UsageError("--example expects a NAME (e.g. --example program4)")
            out.append(str(example_path(name)))
        else:
            out.append(a)
    return out


def _unrecognized(sub: argparse.ArgumentParser, extras: list[str]) -> str:
    """The subcommand parser's message for unknown arguments, with close option names."""
    options = [o for action in sub._actions for o in action.option_strings]
    hints = []
    for e in extras:
        close = difflib.get_close_matches(e.partition("=")[0], options, n=1)
        if e.startswith("-") and close:
            hints.append(f"{e} (did you mean {close[0]}?)")
        else:
            hints.append(e)
    return f"unrecognized arguments: {' '.join(hints)}"


def error_json(e: ProgramError | UsageError) -> dict[str, object]:
    """An error as a JSON object: file, line, column (null when not about a file) and message."""
    if isinstance(e, ProgramError):
        return {"file": e.path, "line": e.line, "column": e.col, "message": e.message}
    return {"file": None, "line": None, "column": None, "message": str(e)}


def _report_error(e: ProgramError | UsageError, command: str, as_json: bool) -> int:
    if isinstance(e, ProgramError):
        print(e.render(), file=sys.stderr)
    else:
        print(f"simplifier {command}: error: {e}", file=sys.stderr)
    if as_json:
        from simplifier.cli.common import print_json

        print_json({"errors": [error_json(e)]})
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command(words)
    if command is None and "--version" in words:  # answered without importing any command
        build_parser(commands=False).parse_args(words)
    _Parser.json_errors = "--json" in words
    parser = build_parser(command)
    try:
        words = _expand_examples(words)
    except UsageError as e:
        return _report_error(e, command or "", "--json" in words)
    args, extras = parser.parse_known_args(words)
    if extras:
        if args.command is None:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub = subparsers.choices[args.command]
        sub.error(_unrecognized(sub, extras))
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from simplifier.cli.common import command_io

    try:
        with command_io():
            return int(args.func(args) or 0)
    except (ProgramError, UsageError) as e:
        return _report_error(e, args.command, bool(getattr(args, "json", False)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def entry() -> None:
    sys.exit(main())
