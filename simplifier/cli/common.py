"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from simplifier.errors import ProgramError, UsageError
from simplifier.ir import Program
from simplifier.parse import parse_file


def add_program_options(p: argparse.ArgumentParser) -> None:
    """``--semantics`` and ``--set NAME=VALUE``, for every command that reads programs."""
    p.add_argument(
        "--semantics",
        choices=("math", "hero"),
        default="math",
        help="numeric semantics: 'math' (default) or the paper's protected 'hero'",
    )
    p.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="give a hyper its value (repeatable), e.g. --set beta1=0.9",
    )


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")


def parse_values(items: list[str]) -> dict[str, Fraction]:
    """``["beta1=0.9"]`` -> ``{"beta1": Fraction(9, 10)}``, exactly."""
    values: dict[str, Fraction] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            values[name.strip()] = Fraction(Decimal(text.strip()))
        except (InvalidOperation, ValueError):
            raise UsageError(f"--set {name}: {text!r} is not a number") from None
    return values


def load(path: str, args: argparse.Namespace) -> Program:
    """Parse a program file with the command's ``--set`` values."""
    return parse_file(path, parse_values(getattr(args, "values", [])))


def print_json(data: dict[str, Any]) -> None:
    """A ``--json`` report on stdout, its first field ``"schema_version"`` (docs/cli.md)."""
    from simplifier.cli import SCHEMA_VERSION

    json.dump({"schema_version": SCHEMA_VERSION, **data}, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def write_output(path: str, text: str, force: bool) -> None:
    """Write ``text`` to ``path`` atomically; refuse to overwrite an existing file without force."""
    target = Path(path)
    if target.exists() and not force:
        raise ProgramError("output file exists; pass --force to overwrite it", path)
    if target.exists() and target.is_dir():
        raise ProgramError("output path is a directory", path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise ProgramError(f"directory {str(directory)!r} does not exist", path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
