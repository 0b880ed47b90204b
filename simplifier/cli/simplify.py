"""``simplifier simplify FILE [-o OUT] [--force] [--json] [--semantics] [--allow]``.

Prints the simplified program, then the change log and the verdict as ``#`` comments (so the
output is still a valid program file). With ``-o`` the program goes to OUT (atomically; an
existing file only with ``--force``) and the log to stdout. Exit 0 when the numeric check
agrees and compared something, 1 when it does not agree, or compared nothing, or a logged
condition fails on its inputs (nothing is written then; ``--accept-unchecked`` accepts the last
two), 2 on bad input. ``--time-limit`` bounds the whole command.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from simplifier.cli.ablate import add_simplify_options, simplify_with_ablation
from simplifier.cli.common import (
    add_json_option,
    add_program_options,
    check_output,
    load,
    output_option,
    print_json,
    write_output,
)
from simplifier.passes.base import DEFAULT_TIME_LIMIT, Change


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simplify",
        help="simplify a program (dead code, rewrite rules, SymPy folding) and log every change",
        description="Simplify a program: dead-code removal, named rewrite rules, SymPy folding "
        "and a readable reconstruction. Every change is logged with its exactness level "
        "(exact, almost-everywhere with its condition, approximate with its bound); the result "
        "is checked against the input.",
    )
    p.add_argument("file", metavar="FILE", help="the program file")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=output_option,
        help="write the simplified program to OUT ('-': stdout)",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    add_program_options(p)
    p.add_argument(
        "--allow",
        choices=("exact", "almost-everywhere", "approximate"),
        default="almost-everywhere",
        help="the least exact rewrites that may be applied (default: almost-everywhere)",
    )
    p.add_argument(
        "--time-limit",
        type=_seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"bound the whole command (default {DEFAULT_TIME_LIMIT:g}): passes that would "
        "start later are skipped, SymPy work and the equivalence check stop, each with a note",
    )
    p.add_argument(
        "--accept-unchecked",
        action="store_true",
        help="succeed (exit 0, write OUT) even when the numeric check compared nothing or a "
        "logged condition fails on its inputs (by default: exit 1, nothing written)",
    )
    add_json_option(p)
    add_simplify_options(p)  # --ablate and its measurement options (simplifier/cli/ablate.py)
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def change_line(c: Change) -> str:
    """One change as a log line: ``line 12  rewrite  DETAIL  [LEVEL: CONDITION]``."""
    where = f"line {c.line}" if c.line is not None else ""
    how = f"{c.level}: {c.condition}" if c.condition else c.level
    return f"{where:<8} {c.kind:<15} {c.detail}  [{how}]"


def report(result: Any, semantics: str, allow: str, verdict: bool = True) -> str:
    """The program text followed by the log as comments (the golden files are this text
    without the verdict line)."""
    from simplifier.printer import to_text

    before, after = result.operations
    lines = [f"# simplified: {before} -> {after} operations (semantics {semantics}, allow {allow})"]
    lines += [f"# {change_line(c)}".rstrip() for c in result.changes]
    lines += [f"# note: {n}" for n in result.notes]
    if verdict:
        lines.append(f"# verdict: {result.verdict}")
    return to_text(result.program) + "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from simplifier.printer import to_text
    from simplifier.simplify import simplify

    if args.output == "-":  # stdout: the same as no -o
        args.output = None
    if args.output:
        check_output(args.output, args.force)  # fail before the work; write_output checks again
    program = load(args.file, args)
    ablation = None
    if args.ablate:
        result, ablation = simplify_with_ablation(program, args)
    else:
        result = simplify(program, args.semantics, args.allow, time_limit=args.time_limit)
    differs = result.numeric is not None and not result.numeric.agree
    unverified = [] if args.accept_unchecked else result.unverified
    ok = not differs and not unverified
    if args.output and ok:
        write_output(args.output, to_text(result.program), args.force)
    if args.json:
        extra = {"ablation": ablation.as_json()} if ablation is not None else {}
        print_json({"path": args.file, "output": args.output, **result.as_json(), **extra})
    elif args.output:
        text = report(result, args.semantics, args.allow)
        print("\n".join(line for line in text.splitlines() if line.startswith("#")))
    else:
        print(report(result, args.semantics, args.allow), end="")
    if differs and result.numeric is not None:
        print(
            f"simplifier simplify: error: the simplified program does not agree with "
            f"{args.file} ({result.numeric.text()}); nothing written",
            file=sys.stderr,
        )
        return 1
    if unverified:
        print(
            f"simplifier simplify: error: the result is not verified: {'; '.join(unverified)}; "
            f"nothing written (--accept-unchecked accepts it)",
            file=sys.stderr,
        )
        return 1
    return 0
