"""``simplifier check FILE...``: parse and verify; print roles, states and types."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from simplifier.analysis.types import infer_types
from simplifier.cli import error_json
from simplifier.cli.common import add_json_option, add_program_options, load, print_json
from simplifier.errors import ProgramError
from simplifier.ir import Program, format_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="parse and verify programs; print roles, states and types",
        description="Parse and verify each program; print its roles, states and "
        "the type (scalar or tensor) of every variable.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    add_program_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def report(program: Program) -> dict[str, Any]:
    """The check report of one program (the JSON form)."""
    types = infer_types(program)
    values = []
    final: dict[str, str] = {}
    for prm in program.params:
        final[prm.name] = types[prm.name].value
    for s in program.body:
        if s.var is None:
            continue
        values.append(
            {
                "name": s.var,
                "ssa": s.target,
                "line": s.loc.line if s.loc else None,
                "type": types[s.target].value,
            }
        )
        final[s.var] = types[s.target].value
    return {
        "path": program.path,
        "name": program.name,
        "params": [
            {
                "name": p.name,
                "role": p.role.value,
                "default": format_number(p.default.value) if p.default else None,
            }
            for p in program.params
        ],
        "states": list(program.states),
        "types": final,
        "values": values,
    }


def _text(r: dict[str, Any]) -> str:
    roles = ", ".join(f"{p['name']} {p['role']}" for p in r["params"])
    hypers = ", ".join(f"{p['name']}={p['default']}" for p in r["params"] if p["role"] == "hyper")
    lines = [
        f"{r['path']}: ok: {r['name']}",
        f"  roles:  {roles}",
        f"  states: {', '.join(r['states']) or '(none)'}",
    ]
    if hypers:
        lines.append(f"  hypers: {hypers}")
    lines.append("  types:")
    width = max(len(n) for n in r["types"])
    assigned: dict[str, set[str]] = {}  # one pass: a scan per name is quadratic on long programs
    for v in r["values"]:
        assigned.setdefault(v["name"], set()).add(v["type"])
    for name, t in r["types"].items():
        mixed = sorted(assigned.get(name, ()))
        note = f"  (assigned as {' and '.join(mixed)})" if len(mixed) > 1 else ""
        lines.append(f"    {name:<{width}}  {t}{note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check every file, also after a bad one: the good ones' reports, then each error (exit 2)."""
    reports: list[dict[str, Any]] = []
    errors: list[ProgramError] = []
    for path in args.files:
        try:
            reports.append(report(load(path, args)))
        except ProgramError as e:
            errors.append(e)
    if args.json:
        print_json({"programs": reports, "errors": [error_json(e) for e in errors]})
    elif reports:
        print("\n\n".join(_text(r) for r in reports))
    for err in errors:
        print(err.render(), file=sys.stderr)
    return 2 if errors else 0
