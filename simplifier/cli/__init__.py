"""The ``simplifier`` command. Each subcommand is a module of this package with a ``register``
function that adds its parser and sets ``func``; add a module name to COMMANDS to add one.

Exit codes: 0 success, 1 a negative answer (e.g. not equivalent), 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from simplifier import __version__
from simplifier.errors import ProgramError, UsageError

COMMANDS = ["check", "equiv", "analyze", "hash", "simplify", "ablate", "emit", "search"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simplifier",
        description="Analyse, simplify, verify and compile optimizer programs "
        "(the language of the Lion paper).",
    )
    parser.add_argument("--version", action="version", version=f"simplifier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"simplifier.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ProgramError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"simplifier {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def entry() -> None:
    sys.exit(main())
