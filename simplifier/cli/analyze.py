"""``simplifier analyze FILE``: live and dead statements and states (and why), types, hashes."""

from __future__ import annotations

import argparse
from typing import Any

from simplifier.analysis.fingerprint import fingerprint
from simplifier.analysis.hashing import structural_hash
from simplifier.analysis.liveness import liveness
from simplifier.analysis.types import infer_types
from simplifier.cli.common import add_json_option, add_program_options, load, print_json
from simplifier.ir import Program, Stmt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="live and dead statements and states (and why), types, hashes",
        description="Abstract execution of one program: every statement with its line, live or "
        "dead and why (dead code is found within one step and across steps: a state "
        "overwritten before the next step reads it is dead); every state live or dead and why; "
        "the type of every variable; the structural hash and the numeric fingerprint.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--within-step",
        action="store_true",
        help="liveness of one call only: every state counts as read by the next step",
    )
    add_program_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def _statement_text(program: Program, s: Stmt, lines: list[str]) -> str:
    line = s.loc.line if s.loc else 0
    if 0 < line <= len(lines):
        return lines[line - 1].split("#", 1)[0].strip()  # the language has no strings: # starts
    args = ", ".join(a.name if hasattr(a, "name") else str(a) for a in s.args)
    return f"{s.var} = {s.op}({args})"


def report(program: Program, *, semantics: str = "math", within_step: bool = False) -> dict:
    """The analysis of one program, in the JSON form of ``simplifier analyze --json``.

    >>> from simplifier.parse import parse
    >>> r = report(parse("def f(w, g, m):\\n  m = cosh(g)\\n  return g, m\\n"))
    >>> r["statements"][0]["live"], r["states"][0]["reason"]
    (False, 'overwritten at line 2 before it is read')
    """
    types = infer_types(program)
    info = liveness(program, across_steps=not within_step)
    lines = program.source.splitlines() if program.source else []
    statements: list[dict[str, Any]] = []
    for s in program.body:
        if s.var is None:  # a nested temporary: its line is reported by its statement
            continue
        fact = info.values[s.target]
        statements.append(
            {
                "line": s.loc.line if s.loc else None,
                "text": _statement_text(program, s, lines),
                "live": fact.live,
                "reason": fact.reason,
                "var": s.var,
                "ssa": s.target,
                "type": types[s.target].value,
            }
        )
    final = {p.name: types[p.name].value for p in program.params}
    for s in program.body:
        if s.var is not None:
            final[s.var] = types[s.target].value
    return {
        "path": program.path,
        "name": program.name,
        "semantics": semantics,
        "across_steps": not within_step,
        "statements": statements,
        "states": [{"name": n, "live": f.live, "reason": f.reason} for n, f in info.states.items()],
        "types": final,
        "hash": structural_hash(program),
        "fingerprint": fingerprint(program, semantics=semantics),  # type: ignore[arg-type]
    }


def _text(r: dict[str, Any]) -> str:
    out = [
        f"{r['path']}: {r['name']}",
        f"  structural hash  {r['hash']}",
        f"  fingerprint      {r['fingerprint']}  ({r['semantics']} semantics)",
        "  statements:" if r["statements"] else "  statements: (none)",
    ]
    width = max((len(s["text"]) for s in r["statements"]), default=0)
    for s in r["statements"]:
        line = f"{s['line']:>4}" if s["line"] is not None else "   ?"
        why = f"  # {s['reason']}" if s["reason"] else ""
        out.append(
            f"  {line}  {'live' if s['live'] else 'DEAD'}  {s['text']:<{width}}{why}".rstrip()
        )
    out.append("  states:" if r["states"] else "  states: (none)")
    for st in r["states"]:
        why = f"  # {st['reason']}" if st["reason"] else ""
        out.append(f"    {st['name']}  {'live' if st['live'] else 'DEAD'}{why}")
    out.append("  types:")
    name_width = max(len(n) for n in r["types"])
    out += [f"    {n:<{name_width}}  {t}" for n, t in r["types"].items()]
    dead = sum(not s["live"] for s in r["statements"]) + sum(not s["live"] for s in r["states"])
    out.append(f"  {dead} dead" if dead else "  nothing dead")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    program = load(args.file, args)
    r = report(program, semantics=args.semantics, within_step=args.within_step)
    if args.json:
        print_json(r)
    else:
        print(_text(r))
    return 0
