"""Benchmark: time per pair of ``simplifier.equivalent`` on the issue's pairs (issue 5).

Target: under 1 s per pair. Each pair is timed cold (its first call in this process, with
SymPy's caches cleared) and warm (best of ``--repeat`` further calls). The anchor, measured in
the same run, is what a purely sampled check costs: both programs run over one 24-step float64
trajectory with :func:`simplifier.numeric.run`; the ratio says how many such trajectories one
verdict costs.

    python bench/equiv.py [--repeat 3] [--wall]

Timings are CPU time of this process (``time.process_time``; z3 and mpmath run in-process) so
that other processes on a shared machine disturb them less; ``--wall`` uses wall-clock time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from sympy.core.cache import clear_cache

from simplifier.equiv import equivalent
from simplifier.ir import Program
from simplifier.numeric import Semantics, run
from simplifier.parse import parse, parse_file

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
PAIRS = CORPUS / "equiv"  # the programs of the pairs (tests/test_equiv.py checks the verdicts)


def program4_ablated() -> Program:
    text = (CORPUS / "program4.py").read_text()
    drop = ("g = clip(g, lr)", "g = arcsin(g)")
    return parse("\n".join(ln for ln in text.splitlines() if ln.strip() not in drop) + "\n")


@dataclass(frozen=True)
class Pair:
    name: str
    a: Program
    b: Program
    semantics: Semantics
    expected: tuple[str, ...]


def pairs() -> list[Pair]:
    p4 = program4_ablated()
    adam = parse_file(str(CORPUS / "adam.py"))
    lion_text = (PAIRS / "lion_scaled.py").read_text(encoding="utf-8")
    lion = parse(lion_text)
    lion99 = parse(lion_text.replace("beta2=0.996991", "beta2=0.99"))
    raw = parse_file(str(CORPUS / "program4_raw.py"))
    full = parse_file(str(CORPUS / "program4.py"))
    sign_div = parse_file(str(PAIRS / "sign_by_division.py"))
    sign = parse_file(str(PAIRS / "sign.py"))
    values = {"beta1": Fraction("0.899"), "beta2": Fraction("0.996991")}
    values["weight_decay"] = Fraction("0.4602")
    return [
        Pair("Program 4 - clip, arcsin vs Lion", p4, lion, "math", ("proved",)),
        Pair("  same vs Lion beta2 = 0.99", p4, lion99, "math", ("refuted",)),
        Pair(
            "Adam vs renamed/reordered/padded",
            adam,
            parse_file(str(PAIRS / "adam_renamed.py")),
            "math",
            ("identical", "proved"),
        ),
        Pair(
            "Adam vs scaled, swapped states",
            adam,
            parse_file(str(PAIRS / "adam_scaled.py")),
            "math",
            ("proved",),
        ),
        Pair("c/abs(c) vs sign(c), math", sign_div, sign, "math", ("proved",)),
        Pair("c/abs(c) vs sign(c), hero", sign_div, sign, "hero", ("refuted",)),
        Pair("raw Program 4 vs Program 4", raw, full, "math", ("identical",)),
        Pair(
            "Program 4 vs corpus Lion (--set)",
            p4,
            parse_file(str(CORPUS / "lion.py"), values),
            "math",
            ("refuted",),
        ),
    ]


def anchor(pair: Pair) -> None:
    """Both programs over one 24-step float64 trajectory (two tensors)."""
    rng = np.random.default_rng(0)
    w = [rng.normal(size=3), rng.normal(size=2)]
    grads = [[rng.normal(size=3), rng.normal(size=2)] for _ in range(24)]
    for p in (pair.a, pair.b):
        run(p, w, grads, [1.0] * 24, semantics=pair.semantics)


def timed(clock: Callable[[], float], f: Callable[[], object]) -> tuple[float, object]:
    start = clock()
    out = f()
    return clock() - start, out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="warm calls per pair (best is kept)")
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = ap.parse_args(argv)
    clock = time.perf_counter if args.wall else time.process_time
    kind = "wall" if args.wall else "CPU"

    header = (
        f"{'pair':<36} {'verdict':<15} {'cold s':>7} {'warm s':>7} {'anchor ms':>9} {'x anchor':>8}"
    )
    print(f"equivalence verdicts ({kind} time; anchor: both programs, one 24-step trajectory)")
    print(header)
    print("-" * len(header))
    worst, wrong = 0.0, []
    for pair in pairs():
        clear_cache()
        cold, verdict = timed(clock, lambda p=pair: equivalent(p.a, p.b, p.semantics))
        warm = min(
            timed(clock, lambda p=pair: equivalent(p.a, p.b, p.semantics))[0]
            for _ in range(args.repeat)
        )
        base = min(timed(clock, lambda p=pair: anchor(p))[0] for _ in range(args.repeat))
        name = verdict.verdict  # type: ignore[attr-defined]
        if name not in pair.expected:
            wrong.append(pair.name)
        worst = max(worst, cold, warm)
        print(
            f"{pair.name:<36} {name:<15} {cold:>7.3f} {warm:>7.3f} {base * 1e3:>9.2f} "
            f"{warm / base:>8.0f}"
        )
    status = "met" if worst < 1.0 else "NOT met"
    print(f"\ntarget < 1 s per pair: {status} (slowest {worst:.3f} s)")
    if wrong:
        print(f"unexpected verdicts: {', '.join(wrong)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
