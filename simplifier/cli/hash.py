"""``simplifier hash FILE...``: one line per file (structural hash, fingerprint, path).

Programs with the same structural hash are the same program up to names, statement order,
nesting, dead code, commutative argument order and constant spelling; programs with the same
fingerprint compute the same updates on the fingerprint's inputs (see ``docs/analysis.md``).
Sorting the output groups duplicates: ``simplifier hash found/*.py | sort``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simplifier.analysis.fingerprint import fingerprint
from simplifier.analysis.hashing import DigestCache, structural_hash
from simplifier.analysis.types import infer_types
from simplifier.cli import error_json
from simplifier.cli.common import add_json_option, add_program_options, load, print_json
from simplifier.errors import ProgramError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hash",
        help="structural hash and numeric fingerprint of each program (spot duplicates)",
        description="Print one line per program: structural hash, numeric fingerprint, path. "
        "A directory stands for the .py files in it. A file that does not parse is reported "
        "on stderr and the others are still hashed (exit code 2 at the end).",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    add_program_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def _paths(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        path = Path(item)
        out += sorted(str(p) for p in path.glob("*.py")) if path.is_dir() else [item]
    return out


def run(args: argparse.Namespace) -> int:
    rows = []
    errors: list[ProgramError] = []
    cache = DigestCache()  # the files of a folder share most sub-expressions
    for path in _paths(args.files):
        try:
            program = load(path, args)
            infer_types(program)  # reject ill-typed programs with their error
            row = {
                "path": path,
                "hash": structural_hash(program, cache=cache),
                "fingerprint": fingerprint(program, semantics=args.semantics),
            }
        except ProgramError as e:
            print(e.render(), file=sys.stderr)
            errors.append(e)
            continue
        rows.append(row)
        if not args.json:
            print(f"{row['hash']}  {row['fingerprint']}  {path}", flush=True)
    if args.json:
        errs = [error_json(e) for e in errors]
        print_json({"semantics": args.semantics, "programs": rows, "errors": errs})
    return 2 if errors else 0
