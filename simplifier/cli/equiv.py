"""``simplifier equiv A B``: are two programs the same optimizer?

Exit 0 for ``identical``, ``proved``, ``proved-bounded`` and ``not-refuted`` (the verdict says
which), 1 for ``refuted`` or when the float64 trajectories disagree (unless ``--reals``), 2 for
bad input.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction

from simplifier.cli.common import add_json_option, add_program_options, parse_values, print_json
from simplifier.equiv.refute import DEFAULT_RTOL
from simplifier.equiv.verdict import Counterexample, Verdict
from simplifier.errors import UsageError
from simplifier.ir import Program
from simplifier.parse import parse_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "equiv",
        help="decide whether two programs are the same optimizer",
        description="Compare two programs: identical (same structural hash), proved (an "
        "inductive proof, with its conditions), proved-bounded (the first K updates are "
        "symbolically equal), not-refuted (random trajectories agree) or refuted (with a "
        "minimal counterexample). Exit 0 unless refuted (1); 2 for bad input.",
    )
    p.add_argument("a", metavar="A", help="first program file")
    p.add_argument("b", metavar="B", help="second program file")
    p.add_argument(
        "--steps",
        type=int,
        default=4,
        metavar="K",
        help="steps unrolled symbolically when no inductive proof is found (default 4)",
    )
    p.add_argument(
        "--rtol",
        type=float,
        default=DEFAULT_RTOL,
        metavar="R",
        help=f"relative tolerance of numeric comparisons (default {DEFAULT_RTOL:g}); "
        "loosen it to accept approximate equalities as not-refuted",
    )
    p.add_argument(
        "--reals",
        action="store_true",
        help="ask for equivalence over the real numbers only: exit 0 for a proof even where "
        "the float64 trajectories disagree (e.g. (g + 1e20) - 1e20 vs g)",
    )
    add_program_options(p)
    add_json_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simplifier.equiv.api import equivalent

    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if not (math.isfinite(args.rtol) and 0 <= args.rtol < 1):
        raise UsageError(f"--rtol must be a number in [0, 1), got {args.rtol}")
    values = parse_values(args.values)
    (a, used_a), (b, used_b) = _load(args.a, values), _load(args.b, values)
    unused = sorted(set(values) - used_a - used_b)
    if unused:
        raise UsageError(f"--set {unused[0]}: neither program has a hyper named {unused[0]!r}")
    verdict = equivalent(a, b, args.semantics, args.steps, args.rtol)
    if args.json:
        print_json({"a": args.a, "b": args.b, **verdict.as_json()})
    else:
        print(render(verdict, args.a, args.b))
    return verdict.exit_code_for(reals=args.reals)


def _load(path: str, values: dict[str, Fraction]) -> tuple[Program, set[str]]:
    """Parse with the ``--set`` values of the hypers this program has (the two programs may
    name different hypers; a name neither has is an error, reported by the caller)."""
    program = parse_file(path, values, ignore_unknown=True)
    return program, set(values) & {p.name for p in program.hypers}


def render(v: Verdict, a: str, b: str) -> str:
    """The text report: the verdict line, then conditions, mapping or counterexample."""
    d = v.details
    head = f"{a} vs {b}: {v.verdict} ({d.semantics} semantics)"
    lines = [head]
    if v.verdict == "identical" and d.hashes is not None:
        lines.append(f"  structural hash {d.hashes.a}")
    if v.verdict == "proved" and d.mapping:
        pairs = ", ".join(f"{k} = {e}" for k, e in d.mapping.items())
        lines.append(f"  states: {pairs}")
    if v.verdict == "proved-bounded":
        lines.append(
            f"  first {d.bounded_steps} updates symbolically equal; no inductive proof "
            f"({d.proof or ''}); random trajectories agree"
        )
    if v.verdict == "not-refuted":
        lines.append(
            f"  no proof ({d.proof or ''}); random trajectories agree within rtol {d.rtol:g}"
        )
    sources = d.condition_sources
    for i, c in enumerate(v.conditions):
        where = f"  [{sources[i]}]" if i < len(sources) else ""
        lines.append(f"  where {c}{where}")
    if d.float64 is not None and not d.float64.agrees:
        lines.append(
            f"  float64 trajectories DISAGREE from step {d.float64.first_difference} "
            f"(relative difference {d.float64.relative_difference:.3g} > rtol {d.rtol:g}): "
            "equivalent over the reals, not in float64 (exit 1 unless --reals)"
        )
    if v.counterexample is not None:
        lines += _counterexample(v.counterexample)
    return "\n".join(lines)


def _counterexample(c: Counterexample) -> list[str]:
    def fmt(t: list[list[float]]) -> str:
        return str(t[0]) if len(t) == 1 else str(t)

    out = [f"  updates differ at step {c.step} (relative difference {c.relative_difference:.3g}):"]
    for s in c.inputs:
        out.append(f"    step {s.step}: w = {fmt(s.w)}, g = {fmt(s.g)}, lr = {s.lr:g}")
    out.append(f"    update A = {fmt(c.update_a)}")
    out.append(f"    update B = {fmt(c.update_b)}")
    out.append(f"    A - B    = {fmt(c.difference)}")
    return out
